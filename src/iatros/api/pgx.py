"""Pharmacogenomic recommendations (`iatros pgx`): diplotypes or a VCF to CPIC recommendations,
as a report dict, text or a FHIR R4 Bundle. A thin face over `iatros.pgx`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iatros.pgx import fhir, recommend
from iatros.pgx.tables import load
from iatros.pgx.warfarin import Patient


def patient(age: float | None = None, height: float | None = None, weight: float | None = None,
            race: str | None = None, inducer: list[str] | None = None,
            amiodarone: str | bool | None = None) -> Patient:
    """The warfarin (IWPC) covariates, checked: age in years, height in cm, weight in kg, race
    (white, asian, black, missing-or-mixed), enzyme inducers ('none' or carbamazepine, phenytoin,
    rifampin, rifampicin), amiodarone yes/no. What is not given stays unknown (no dose)."""
    return Patient.build(age=age, height=height, weight=weight, race=race, inducer=inducer,
                         amiodarone=amiodarone)


def recommend_diplotypes(diplotypes: list[str], drugs: list[str] | None = None,
                         patient: Patient | None = None) -> dict[str, Any]:
    """`["CYP2C19=*1/*2"]` (and drugs) to a report: genes, drugs, the tables' source; HLA-B as
    `HLA-B=*57:01/*08:01` or `HLA-B*57:01=positive`; `patient` for the warfarin dose."""
    return recommend.from_diplotypes(diplotypes, drugs, patient=patient)


def recommend_vcf(path: str | Path, drugs: list[str] | None = None, build: str | None = None,
                  sample: str | None = None, patient: Patient | None = None) -> dict[str, Any]:
    """One sample of a VCF (GRCh37 or GRCh38) to a report for the drugs."""
    return recommend.from_vcf(path, drugs, build=build, sample=sample, patient=patient)


def as_text(report: dict[str, Any]) -> str:
    return recommend.as_text(report)


def as_fhir(report: dict[str, Any], subject: str | None = None) -> dict[str, Any]:
    """The report as a validated FHIR R4 collection Bundle."""
    return fhir.bundle(report, subject=subject)


def source() -> dict[str, object]:
    """The tables' package, version and file digests."""
    return load().source()
