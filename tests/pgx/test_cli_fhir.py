"""`iatros pgx recommend` for every supported pair, as text, JSON and a FHIR R4 Bundle that
fhir.resources validates; bad input fails with the cause named."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iatros.cli import app
from iatros.errors import ConfigError
from iatros.pgx.recommend import from_diplotypes

runner = CliRunner()

PAIRS = [
    (["CYP2C19=*1/*2"], "clopidogrel", "recommendation", "Avoid standard dose"),
    (["CYP2D6=*4/*4"], "codeine", "recommendation", "diminished analgesia"),
    (["CYP2C9=*1/*3", "VKORC1=Reference/rs9923231"], "warfarin", "recommendation",
     "validated pharmacogenetic algorithm"),
    (["TPMT=*3A/*3A", "NUDT15=*1/*1"], "azathioprine", "recommendation", "non-thiopurine"),
    (["TPMT=*1/*1", "NUDT15=*3/*3"], "mercaptopurine", "recommendation", "10 mg/m2/day"),
    (["DPYD=*2A/Reference"], "fluorouracil", "recommendation", "Reduce starting dose by 50%"),
    (["DPYD=*2A/*2A"], "capecitabine", "recommendation", "Avoid use"),
    (["SLCO1B1=*5/*5"], "simvastatin", "recommendation", "alternative statin"),
    (["HLA-B=*57:01/*08:01"], "abacavir", "recommendation", "Abacavir is not recommended"),
    (["CYP3A5=*1/*1"], "tacrolimus", "recommendation", "Increase starting dose"),
]


def _invoke(*args: str):
    return runner.invoke(app, ["pgx", "recommend", *args])


@pytest.mark.parametrize(("diplotypes", "drug", "status", "text"), PAIRS)
def test_every_supported_pair_answers(diplotypes, drug, status, text):
    args = [x for d in diplotypes for x in ("--diplotype", d)] + ["--drug", drug]
    res = _invoke(*args, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    (d,) = report["drugs"]
    assert d["status"] == status
    assert text in (d.get("recommendation") or " ".join(d.get("reasons", [])))
    assert report["source"]["package"] == "pypgx" and report["source"]["version"] == "0.27.0"
    res = _invoke(*args)
    assert res.exit_code == 0 and "pypgx 0.27.0" in res.output and drug in res.output


@pytest.mark.parametrize(("diplotypes", "drug", "status", "text"), PAIRS)
def test_fhir_bundles_validate(diplotypes, drug, status, text):
    from fhir.resources.R4B.bundle import Bundle

    args = [x for d in diplotypes for x in ("--diplotype", d)]
    res = _invoke(*args, "--drug", drug, "--fhir", "--subject", "p1")
    assert res.exit_code == 0, res.output
    bundle = Bundle.model_validate(json.loads(res.output))
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds.count("DetectedIssue") == 1 and "Observation" in kinds
    issue = next(e.resource for e in bundle.entry if e.resource.get_resource_type() == "DetectedIssue")
    assert issue.patient.reference == "Patient/p1"
    if status == "recommendation":
        assert issue.status == "final" and text in issue.detail and issue.implicated
        observations = [e.resource for e in bundle.entry
                        if e.resource.get_resource_type() == "Observation"]
        codes = {c.code for o in observations for c in o.code.coding}
        components = {c.code for o in observations for comp in o.component or []
                      for c in comp.code.coding or []}
        assert {"84413-4", "therapeutic-implication"} <= codes
        assert {"48018-6", "51963-7", "conclusion-string"} <= components
    else:
        assert issue.status == "preliminary"


def test_indeterminate_phenotypes_say_why():
    report = from_diplotypes(["CYP2C9=*1/*7"], ["warfarin", "celecoxib"])
    gene = report["genes"][0]
    assert gene["status"] == "indeterminate" and "*7" in gene["reasons"][0]


@pytest.mark.parametrize(("args", "message"), [
    (["--diplotype", "CYP2C19=*1/*2", "--drug", "aspirinx"], "no CPIC gene-drug pair for 'aspirinx'"),
    (["--diplotype", "BRCA1=*1/*2"], "unknown or unsupported gene 'BRCA1'"),
    (["--diplotype", "CYP2D6=*1/*999"], "unknown CYP2D6 allele"),
    ([], "give either --diplotype"),
    (["--vcf", "/nonexistent.vcf"], "does not exist"),
])
def test_bad_input_names_the_cause(args, message):
    res = _invoke(*args)
    assert res.exit_code != 0
    err = res.exception if isinstance(res.exception, ConfigError) else None
    assert message in (str(err) if err else res.output)


def test_tables_command_cites_the_source():
    res = runner.invoke(app, ["pgx", "tables"])
    assert res.exit_code == 0
    src = json.loads(res.output)
    assert src["version"] == "0.27.0" and len(src["files"]["allele-table.csv"]) == 64
