"""Abacavir from HLA-B*57:01 carrier status (CPIC, Martin et al. 2012 and 2014 update): typed
alleles or a test result give CPIC's two rows; unclear or malformed names are indeterminate or
errors naming the cause; a VCF is indeterminate (HLA typing needed); FHIR carries the codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iatros.cli import app
from iatros.errors import ConfigError
from iatros.pgx import hla
from iatros.pgx.recommend import from_diplotypes, from_vcf
from iatros.pgx.tables import load
from tests.pgx.vcfs import records, write

runner = CliRunner()


def _abacavir(text):
    report = from_diplotypes([text], ["abacavir"])
    (gene,), (drug,) = report["genes"], report["drugs"]
    return gene, drug


@pytest.mark.parametrize("text", ["HLA-B=*57:01/*08:01", "HLA-B=*57:01/*57:01",
                                  "HLA-B=B*08:01:01/HLA-B*57:01:01:02", "HLA-B=*07:02/57:01",
                                  "HLA-B=B*5701/B*0801", "HLA-B*57:01=positive",
                                  "HLA-B*57:01=carrier"])
def test_carriers_are_told_abacavir_is_not_recommended(text):
    gene, drug = _abacavir(text)
    assert gene["phenotype"] == "*57:01 positive" and gene["status"] == "called"
    assert drug["status"] == "recommendation"
    assert drug["recommendation"] == ("Significantly increased risk of abacavir hypersensitivity. "
                                      "Abacavir is not recommended (CPIC, strong).")
    assert drug["priority"] == "Abnormal" and "PMID 24561393" in drug["source"]


@pytest.mark.parametrize("text", ["HLA-B=*57:03/*08:01", "HLA-B=*58:01/*07:02",
                                  "HLA-B=*08/*07:02", "HLA-B*57:01=negative",
                                  "HLA-B*57:01=Non-carrier"])
def test_non_carriers_get_standard_dosing(text):
    gene, drug = _abacavir(text)
    assert gene["phenotype"] == "*57:01 negative"
    assert drug["status"] == "recommendation"
    assert "Use abacavir per standard dosing guidelines" in drug["recommendation"]
    assert drug["guideline"] == "https://cpicpgx.org/guidelines/guideline-for-abacavir-and-hla-b/"


@pytest.mark.parametrize(("text", "unclear"), [("HLA-B=*57/*08:01", "*57"),
                                               ("HLA-B=*57:01N/*08:01", "*57:01N")])
def test_names_that_cannot_tell_are_indeterminate_with_the_reason(text, unclear):
    gene, drug = _abacavir(text)
    assert gene["status"] == "indeterminate" and unclear in gene["reasons"][0]
    assert drug["status"] == "indeterminate" and "two-field resolution" in drug["reasons"][0]


@pytest.mark.parametrize(("text", "message"), [
    ("HLA-B=*5x:01/*08:01", "HLA-B allele '\\*5x:01': expected an HLA-B allele name"),
    ("HLA-B=*57:01", "expected HLA-B=ALLELE/ALLELE"),
    ("HLA-B*57:01=maybe", "expected positive or negative"),
    ("HLA-B*58:01=positive", "a test result is read for HLA-B\\*57:01 only"),
    ("HLA-B", "expected HLA-B=ALLELE/ALLELE"),
])
def test_bad_hla_input_names_the_cause(text, message):
    with pytest.raises(ConfigError, match=message):
        from_diplotypes([text], ["abacavir"])


def test_hla_b_not_typed_is_indeterminate():
    (drug,) = from_diplotypes(["CYP2C19=*1/*1"], ["abacavir"])["drugs"]
    assert drug["status"] == "indeterminate" and "HLA-B was not typed" in drug["reasons"][0]


def test_other_hla_b_drugs_stay_not_covered_and_say_why():
    report = from_diplotypes(["HLA-B=*57:01/*58:01"], ["allopurinol"])
    assert report["drugs"][0]["status"] == "not covered"
    assert "*57:01 (abacavir) only" in report["drugs"][0]["reasons"][0]


def test_a_vcf_never_types_hla_b(tmp_path):
    t = load()
    lines = records(t, "CYP2C19", "GRCh38", frozenset(), frozenset())
    report = from_vcf(write(tmp_path / "s.vcf", lines), ["abacavir"])
    (gene,), (drug,) = report["genes"], report["drugs"]
    assert gene["gene"] == "HLA-B" and gene["status"] == "indeterminate"
    assert gene["reasons"] == [hla.VCF_REASON] and "HLA typing result" in hla.VCF_REASON
    assert drug["status"] == "indeterminate"


def test_the_cli_answers_abacavir_with_fhir_codes():
    from fhir.resources.R4B.bundle import Bundle

    res = runner.invoke(app, ["pgx", "recommend", "--diplotype", "HLA-B=*57:01/*08:01", "--drug",
                              "abacavir", "--fhir", "--subject", "p9"])
    assert res.exit_code == 0, res.output
    b = Bundle.model_validate(json.loads(res.output))
    issue = next(e.resource for e in b.entry if e.resource.get_resource_type() == "DetectedIssue")
    assert issue.severity == "high" and "Abacavir is not recommended" in issue.detail
    obs = [e.resource for e in b.entry if e.resource.get_resource_type() == "Observation"]
    gene_codes = {c.valueCodeableConcept.coding[0].code for o in obs for c in o.component or []
                  if c.code.coding and c.code.coding[0].code == "48018-6"}
    assert gene_codes == {"HGNC:4932"}
    meds = [c.valueCodeableConcept.coding[0] for o in obs for c in o.component or []
            if c.code.coding and c.code.coding[0].code == "51963-7"]
    assert [(m.system, m.code) for m in meds] == [("http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "190521")]
    genotype = next(o for o in obs if o.code.coding[0].code == "84413-4")
    assert genotype.valueCodeableConcept.text == "HLA-B *57:01/*08:01"
