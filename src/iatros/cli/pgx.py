"""`iatros pgx recommend|tables`: star-allele diplotypes or a VCF to CPIC recommendations."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from iatros.errors import ConfigError

pgx_app = typer.Typer(
    help="Pharmacogenomics: star-allele diplotypes or a germline VCF (GRCh37 or GRCh38) to "
         "phenotypes and CPIC recommendations, from the CPIC-derived tables packaged with pypgx "
         "(version cited in every answer); warfarin with the IWPC dosing equation (CPIC 2017) "
         "and abacavir from an HLA-B*57:01 typing result (CPIC 2014). Anything that cannot be "
         "answered is reported as indeterminate or not covered, with the reason.",
    no_args_is_help=True)


def _split(values: list[str] | None) -> list[str] | None:
    out = [x.strip() for v in values or [] for x in v.split(",") if x.strip()]
    return out or None


@pgx_app.command("recommend")
def recommend_cmd(
    diplotype: Annotated[list[str] | None, typer.Option(
        "--diplotype", help="GENE=ALLELE/ALLELE, e.g. CYP2C19=*1/*2 (repeatable). VKORC1 as the "
                            "-1639G>A (rs9923231) bases on the gene strand, e.g. VKORC1=A/G (or "
                            "Reference/rs9923231); VKORC1=unknown or CYP2C9=unknown for IWPC's "
                            "'genotype unknown' category. HLA-B as typed alleles "
                            "(HLA-B=*57:01/*08:01) or a test result (HLA-B*57:01=positive).")] = None,
    vcf: Annotated[Path | None, typer.Option(
        "--vcf", help="A VCF (.vcf or .vcf.gz) of one sample; missing positions are never read "
                      "as reference.")] = None,
    drug: Annotated[list[str] | None, typer.Option(
        "--drug", "--drugs", help="Drug(s), repeatable or comma-separated. Default: the drugs of "
                                  "the given genes (diplotypes) or the issue-24 panel (VCF).")] = None,
    build: Annotated[str | None, typer.Option(
        "--build", help="Genome build of the VCF: GRCh37 or GRCh38 (default: from its header).")] = None,
    sample: Annotated[str | None, typer.Option(
        "--sample", help="Sample column of a multi-sample VCF.")] = None,
    fhir: Annotated[bool, typer.Option("--fhir", help="Print a FHIR R4 Bundle (JSON).")] = False,
    subject: Annotated[str | None, typer.Option(
        "--subject", help="Patient id for the FHIR resources' subject (Patient/ID).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    age: Annotated[float | None, typer.Option(
        "--age", help="Warfarin (IWPC): age in years, 18-110 (the equation uses the decade of "
                      "life).", rich_help_panel="Warfarin dose (IWPC)")] = None,
    height: Annotated[float | None, typer.Option(
        "--height", help="Warfarin (IWPC): height in cm, 100-250.",
        rich_help_panel="Warfarin dose (IWPC)")] = None,
    weight: Annotated[float | None, typer.Option(
        "--weight", help="Warfarin (IWPC): weight in kg, 30-300.",
        rich_help_panel="Warfarin dose (IWPC)")] = None,
    race: Annotated[str | None, typer.Option(
        "--race", help="Warfarin (IWPC): white, asian, black (Black or African American) or "
                       "missing-or-mixed.", rich_help_panel="Warfarin dose (IWPC)")] = None,
    inducer: Annotated[list[str] | None, typer.Option(
        "--inducer", help="Warfarin (IWPC): enzyme inducers taken: none, or carbamazepine, "
                          "phenytoin, rifampin, rifampicin (repeatable or comma-separated).",
        rich_help_panel="Warfarin dose (IWPC)")] = None,
    amiodarone: Annotated[str | None, typer.Option(
        "--amiodarone", help="Warfarin (IWPC): amiodarone taken, yes or no.",
        rich_help_panel="Warfarin dose (IWPC)")] = None,
) -> None:
    """Phenotypes and CPIC recommendations for diplotypes (--diplotype) or a VCF (--vcf).

    The warfarin dose (IWPC pharmacogenetic equation, the sqrt of the weekly dose) is computed
    only when --age, --height, --weight, --race, --inducer and --amiodarone are all given;
    without them warfarin gets CPIC's genotype-based text and the missing options are named.
    """
    from iatros.api import pgx

    if (vcf is None) == (not diplotype):
        raise ConfigError("give either --diplotype GENE=A/B (one or more) or --vcf FILE")
    drugs = _split(drug)
    patient = pgx.patient(age=age, height=height, weight=weight, race=race,
                          inducer=_split(inducer), amiodarone=amiodarone)
    report = (pgx.recommend_vcf(vcf, drugs, build=build, sample=sample, patient=patient)
              if vcf is not None
              else pgx.recommend_diplotypes(list(diplotype or []), drugs, patient=patient))
    if fhir:
        json.dump(pgx.as_fhir(report, subject=subject), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif as_json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        typer.echo(pgx.as_text(report))


@pgx_app.command("tables")
def tables_cmd() -> None:
    """The source of the tables: package, version and each file's SHA-256."""
    from iatros.api import pgx

    json.dump(pgx.source(), sys.stdout, indent=1)
    sys.stdout.write("\n")
