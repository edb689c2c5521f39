"""Warfarin: the IWPC pharmacogenetic equation (coefficients as published, by-hand examples),
CPIC 2017's genotype-guided text and caveats, VKORC1 rs9923231 from diplotypes and from real VCF
files on both builds (no-calls never read as reference), the covariates' checks, the CLI and FHIR.

Coefficients: IWPC, N Engl J Med 2009;360:753-64, supplementary appendix. They were cross-checked
against three independent public implementations of the published equation found with the code
search (a Python dosing baseline listing the 18 weights with their labels, a Python script
applying the full equation to the IWPC data set, and a JavaScript clinical-calculator module whose
comment cites appendix S1e and defines age in decades as floor(age / 10)); all three give the same
18 numbers as below. The publication gives no numeric worked example, so the examples here are
computed by hand from the published equation.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iatros.cli import app
from iatros.errors import ConfigError
from iatros.pgx import diplotypes, vcf, warfarin
from iatros.pgx.recommend import from_diplotypes, from_vcf
from iatros.pgx.tables import BUILDS, load
from iatros.pgx.warfarin import Patient
from tests.pgx.vcfs import records, write

runner = CliRunner()
ADULT = {"age": 65, "height": 170, "weight": 80, "race": "white", "inducer": ["none"],
         "amiodarone": "no"}
# rs9923231 (VKORC1 -1639G>A) on each build; C>T on the genome's + strand is G>A on VKORC1's
RS9923231 = {"GRCh37": ("16", 31107689), "GRCh38": ("16", 31096368)}


def _warfarin(texts, **patient):
    report = from_diplotypes(texts, ["warfarin"], patient=Patient.build(**patient) if patient else None)
    (drug,) = report["drugs"]
    return drug


def test_the_coefficients_are_the_published_iwpc_ones():
    assert warfarin.INTERCEPT == 5.6044
    assert (warfarin.AGE_DECADES, warfarin.HEIGHT_CM, warfarin.WEIGHT_KG) == (-0.2614, 0.0087, 0.0128)
    assert warfarin.VKORC1 == {"G/G": 0.0, "A/G": -0.8677, "A/A": -1.6974, "unknown": -0.4854}
    assert warfarin.CYP2C9 == {"*1/*1": 0.0, "*1/*2": -0.5211, "*1/*3": -0.9357, "*2/*2": -1.0616,
                               "*2/*3": -1.9206, "*3/*3": -2.3312, "unknown": -0.2188}
    assert warfarin.RACE == {"white": 0.0, "asian": -0.1092, "black": -0.2760,
                             "missing-or-mixed": -0.1032}
    assert (warfarin.INDUCER, warfarin.AMIODARONE) == (1.1816, -0.5503)


def test_a_by_hand_computation_from_the_published_equation():
    """65 years (decade 6), 170 cm, 80 kg, VKORC1 A/G, CYP2C9 *1/*3, White, no inducer, no
    amiodarone: 5.6044 - 0.2614*6 + 0.0087*170 + 0.0128*80 - 0.8677 - 0.9357
    = 5.6044 - 1.5684 + 1.479 + 1.024 - 0.8677 - 0.9357 = 4.7356; 4.7356^2 = 22.43 mg/week."""
    dose = warfarin.iwpc_dose(Patient.build(**ADULT), "A/G", "*1/*3")
    assert dose.sqrt_weekly == pytest.approx(4.7356, abs=1e-9)
    assert dose.weekly_mg == pytest.approx(22.4259, abs=1e-4)
    assert dose.as_dict()["weekly_dose_mg"] == 22.4 and dose.as_dict()["daily_dose_mg"] == 3.2


def test_a_second_by_hand_computation_with_every_other_term():
    """42 years (decade 4), 160 cm, 55 kg, both genotypes unknown, Asian, carbamazepine,
    amiodarone: 5.6044 - 1.0456 + 1.392 + 0.704 - 0.4854 - 0.2188 - 0.1092 + 1.1816 - 0.5503
    = 6.4727; 6.4727^2 = 41.90 mg/week."""
    p = Patient.build(age=42, height=160, weight=55, race="Asian", inducer=["carbamazepine"],
                      amiodarone="yes")
    dose = warfarin.iwpc_dose(p, "unknown", "unknown")
    assert dose.sqrt_weekly == pytest.approx(6.4727, abs=1e-9)
    assert dose.weekly_mg == pytest.approx(41.8958, abs=1e-4)
    assert dose.inputs["enzyme_inducer"] == "carbamazepine" and dose.inputs["amiodarone"] == "yes"


@pytest.mark.parametrize(("years", "decade"), [(18, 1), (19.9, 1), (20, 2), (65, 6), (89.9, 8), (90, 9)])
def test_age_enters_as_the_decade_of_life(years, decade):
    assert warfarin.age_in_decades(years) == decade


@pytest.mark.parametrize("genotype", list(warfarin.CYP2C9))
def test_each_cyp2c9_category_moves_the_root_by_its_coefficient(genotype):
    p = Patient.build(**ADULT)
    base = warfarin.iwpc_dose(p, "G/G", "*1/*1").sqrt_weekly
    assert warfarin.iwpc_dose(p, "G/G", genotype).sqrt_weekly - base == pytest.approx(
        warfarin.CYP2C9[genotype])


@pytest.mark.parametrize(("race", "key"), [("Black or African American", "black"),
                                           ("african-american", "black"), ("asian", "asian"),
                                           ("missing or mixed", "missing-or-mixed"),
                                           ("White", "white")])
def test_race_names_map_to_the_iwpc_categories(race, key):
    assert warfarin.parse_race(race) == key


def test_diplotypes_and_covariates_give_the_dose_and_cpic_text():
    d = _warfarin(["CYP2C9=*1/*3", "VKORC1=A/G"], **ADULT)
    assert d["status"] == "recommendation"
    assert d["dose"]["weekly_dose_mg"] == 22.4 and d["dose"]["inputs"]["age_decades"] == 6
    assert d["dose"]["inputs"]["VKORC1 rs9923231"] == "A/G" and d["dose"]["inputs"]["CYP2C9"] == "*1/*3"
    assert "non-African ancestry (strong)" in d["recommendation"]
    assert "IWPC estimate: 22.4 mg/week" in d["recommendation"]
    assert any("target INR of 2-3" in c for c in d["caveats"])
    assert any("CYP4F2 are not in it" in c for c in d["caveats"])
    assert d["rxnorm"] == "11289" and "PMID 28198005" in d["source"]


def test_without_covariates_warfarin_gets_the_cpic_text_and_names_what_the_dose_needs():
    d = _warfarin(["CYP2C9=*1/*3", "VKORC1=Reference/rs9923231"])
    assert d["status"] == "recommendation" and "dose" not in d
    assert "validated pharmacogenetic algorithm" in d["recommendation"]
    assert "African ancestry (moderate)" in d["recommendation"]       # race unknown: both branches
    (why,) = [r for r in d["reasons"] if "IWPC dose needs" in r]
    for option in ("--age", "--height", "--weight", "--race", "--inducer", "--amiodarone"):
        assert option in why


def test_partial_covariates_name_only_the_missing_ones_and_invent_nothing():
    d = _warfarin(["CYP2C9=*1/*1", "VKORC1=G/G"], age=50, height=180, weight=90, race="white")
    (why,) = [r for r in d["reasons"] if "IWPC dose needs" in r]
    assert "--inducer" in why and "--amiodarone" in why and "--age" not in why
    assert "dose" not in d


def test_african_ancestry_gets_cpic_text_and_the_star8_reduction_range():
    d = _warfarin(["CYP2C9=*1/*8", "VKORC1=A/G"], **{**ADULT, "race": "black"})
    assert d["recommendation"].startswith("CPIC 2017, African ancestry (moderate)")
    assert "dose warfarin clinically" in d["recommendation"]
    assert d["dose"]["inputs"]["CYP2C9"] == "*1/*1"        # *8 is not in the equation
    # 5.6044 - 1.5684 + 1.479 + 1.024 - 0.8677 - 0.276 = 5.3953; ^2 = 29.109; -15..-30%
    assert d["dose"]["sqrt_weekly_dose"] == pytest.approx(5.3953)
    (adj,) = d["dose"]["cpic_adjustments"]
    assert adj["change"] == "-15 to -30%" and adj["weekly_dose_mg"] == [20.4, 24.7]
    assert "moderate" in adj["strength"]


def test_two_cpic_extra_alleles_give_the_homozygote_range():
    d = _warfarin(["CYP2C9=*5/*11", "VKORC1=G/G"], **{**ADULT, "race": "black"})
    (adj,) = d["dose"]["cpic_adjustments"]
    assert adj["change"] == "-20 to -40%"


def test_cyp4f2_star3_is_an_optional_increase_for_non_african_ancestry_only():
    d = _warfarin(["CYP2C9=*1/*1", "VKORC1=A/G", "CYP4F2=*1/*3"], **ADULT)
    (adj,) = d["dose"]["cpic_adjustments"]
    weekly = d["dose"]["weekly_dose_mg"]
    assert adj["for"] == "CYP4F2*3 carrier" and adj["change"] == "+5 to +10%"
    assert adj["weekly_dose_mg"] == [pytest.approx(round(weekly * 1.05, 1), abs=0.11),
                                     pytest.approx(round(weekly * 1.10, 1), abs=0.11)]
    black = _warfarin(["CYP2C9=*1/*1", "VKORC1=A/G", "CYP4F2=*1/*3"], **{**ADULT, "race": "black"})
    assert "cpic_adjustments" not in black["dose"]
    assert any("no CYP4F2 recommendation for African ancestry" in c for c in black["caveats"])


def test_cyp2c9_poor_metabolizers_are_told_to_consider_an_alternative_agent():
    d = _warfarin(["CYP2C9=*2/*3", "VKORC1=A/A"], **ADULT)
    assert d["phenotypes"]["CYP2C9"] == "Poor Metabolizer"
    assert any("consider an alternative agent" in c for c in d["caveats"])


def test_a_cyp2c9_allele_outside_the_equation_and_cpic_gives_no_dose():
    d = _warfarin(["CYP2C9=*1/*13", "VKORC1=A/G"], **ADULT)
    assert d["status"] == "indeterminate" and "dose" not in d
    assert any("*13" in r and "no IWPC category" in r for r in d["reasons"])


def test_a_normal_function_allele_enters_as_star1():
    d = _warfarin(["CYP2C9=*9/*2", "VKORC1=A/G"], **ADULT)
    assert d["dose"]["inputs"]["CYP2C9"] == "*1/*2"
    assert any("entered the equation as *1/*2" in c for c in d["caveats"])


def test_a_missing_genotype_is_indeterminate_never_reference():
    d = _warfarin(["CYP2C9=*1/*1"], **ADULT)
    assert d["status"] == "indeterminate" and "dose" not in d
    assert any("VKORC1 rs9923231 was not genotyped" in r for r in d["reasons"])


def test_a_genotype_stated_unknown_uses_the_iwpc_unknown_category():
    d = _warfarin(["CYP2C9=*1/*1", "VKORC1=unknown"], **ADULT)
    assert d["status"] == "indeterminate"          # not genotype-guided
    assert d["dose"]["inputs"]["VKORC1 rs9923231"] == "unknown"
    assert d["dose"]["terms"]["VKORC1"] == -0.4854
    assert any("not genotype-guided" in r for r in d["reasons"])


def test_inputs_with_no_positive_root_are_indeterminate():
    d = _warfarin(["CYP2C9=*3/*3", "VKORC1=A/A"], age=110, height=100, weight=30, race="black",
                  inducer=["none"], amiodarone="yes")
    assert d["status"] == "recommendation" and "dose" not in d
    assert any("no positive dose" in r for r in d["reasons"])


def test_vkorc1_bases_on_the_gene_strand_equal_the_table_names():
    a = from_diplotypes(["VKORC1=A/G"], ["warfarin"])["genes"][0]
    b = from_diplotypes(["VKORC1=Reference/rs9923231"], ["warfarin"])["genes"][0]
    assert a["diplotype"] in ("rs9923231/Reference", "Reference/rs9923231")
    assert sorted(a["diplotype"].split("/")) == sorted(b["diplotype"].split("/"))
    with pytest.raises(ConfigError, match="VKORC1 strand: G \\(reference\\) or A"):
        from_diplotypes(["VKORC1=C/T"], ["warfarin"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"height": 300}, r"--height 300: expected a number of centimetres from 100 to 250"),
    ({"height": 1.7}, r"--height 1.7: expected a number of centimetres"),
    ({"weight": 5}, r"--weight 5: expected a number of kilograms from 30 to 300"),
    ({"age": 12}, r"--age 12: expected a number of years from 18 to 110"),
    ({"race": "martian"}, r"--race 'martian': expected one of white, asian, black, missing-or-mixed"),
    ({"inducer": ["aspirin"]}, r"--inducer aspirin: expected 'none' or one or more of carbamazepine"),
    ({"inducer": ["none", "phenytoin"]}, r"--inducer none: expected 'none' or"),
    ({"amiodarone": "maybe"}, r"--amiodarone 'maybe': expected yes or no"),
])
def test_bad_covariates_name_the_field_and_what_was_expected(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Patient.build(**kwargs)


def _vkorc1_vcf(tmp_path, build, gt, with_cyp2c9=True, name="w.vcf"):
    t = load()
    lines = []
    if with_cyp2c9:
        star3 = t.alleles["CYP2C9"]["*3"].core[build]
        lines += records(t, "CYP2C9", build, star3, frozenset())
    chrom, pos = RS9923231[build]
    if gt is not None:
        lines.append(f"{chrom}\t{pos}\trs9923231\tC\tT\t.\tPASS\t.\tGT\t{gt}")
    return write(tmp_path / name, lines, build=build)


@pytest.mark.parametrize("build", BUILDS)
def test_the_rs9923231_positions_are_pypgx_s(build):
    """Checked against pypgx's variant and allele tables (a maintained source), not typed."""
    t = load()
    (v,) = t.alleles["VKORC1"]["rs9923231"].core[build]
    assert (v.chrom, v.pos, v.ref, v.alt) == (*RS9923231[build], "C", "T")
    assert t.variants[v.name] == "rs9923231"


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize(("gt", "genotype"), [("0/0", "G/G"), ("0/1", "A/G"), ("1|0", "A/G"),
                                              ("1/1", "A/A")])
def test_vkorc1_from_a_real_vcf_line(tmp_path, build, gt, genotype):
    path = _vkorc1_vcf(tmp_path, build, gt)
    report = from_vcf(path, ["warfarin"], patient=Patient.build(**ADULT))
    (d,) = report["drugs"]
    assert report["input"]["build"] == build
    assert d["dosing_inputs"]["VKORC1 rs9923231"].startswith(genotype)
    assert d["status"] == "recommendation" and d["dose"]["inputs"]["VKORC1 rs9923231"] == genotype
    assert d["dose"]["inputs"]["CYP2C9"] == "*1/*3"
    expected = warfarin.iwpc_dose(Patient.build(**ADULT), genotype, "*1/*3").weekly_mg
    assert d["dose"]["weekly_dose_mg"] == round(expected, 1)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("gt", ["./.", "0/.", ".|1"])
def test_a_vkorc1_no_call_is_indeterminate_never_reference(tmp_path, build, gt):
    t = load()
    path = _vkorc1_vcf(tmp_path, build, gt)
    r = diplotypes.call(t, "VKORC1", vcf.read(path, t, ["VKORC1"], build=build))
    assert r.status == "indeterminate" and r.diplotype is None
    assert any("no-call" in n for n in r.notes)
    (d,) = from_vcf(path, ["warfarin"], patient=Patient.build(**ADULT))["drugs"]
    assert d["status"] == "indeterminate" and "dose" not in d
    assert any("never read as reference" in x for x in d["reasons"])


def test_an_absent_vkorc1_position_is_missing_not_reference(tmp_path):
    path = _vkorc1_vcf(tmp_path, "GRCh38", None)
    report = from_vcf(path, ["warfarin"], patient=Patient.build(**ADULT))
    vk = next(g for g in report["genes"] if g["gene"] == "VKORC1")
    assert vk["status"] == "indeterminate" and vk["missing_positions"] == ["16-31096368-C-T"]
    assert report["drugs"][0]["status"] == "indeterminate"


def test_the_cli_computes_the_dose_from_its_options():
    res = runner.invoke(app, ["pgx", "recommend", "--diplotype", "CYP2C9=*1/*3", "--diplotype",
                              "VKORC1=A/G", "--drug", "warfarin", "--age", "65", "--height", "170",
                              "--weight", "80", "--race", "white", "--inducer", "none",
                              "--amiodarone", "no", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["drugs"][0]["dose"]["weekly_dose_mg"] == 22.4
    assert report["input"]["patient"]["race"] == "White"
    text = runner.invoke(app, ["pgx", "recommend", "--diplotype", "CYP2C9=*1/*3", "--diplotype",
                               "VKORC1=A/G", "--drug", "warfarin", "--age", "65", "--height",
                               "170", "--weight", "80", "--race", "white", "--inducer", "none",
                               "--amiodarone", "no"])
    assert "IWPC weekly dose 22.4 mg" in text.output and "caveat:" in text.output


def test_the_cli_rejects_a_bad_covariate_by_name():
    res = runner.invoke(app, ["pgx", "recommend", "--diplotype", "CYP2C9=*1/*1", "--diplotype",
                              "VKORC1=G/G", "--drug", "warfarin", "--height", "300"])
    assert res.exit_code != 0
    assert isinstance(res.exception, ConfigError) and "--height 300" in str(res.exception)


def test_the_cli_help_documents_the_warfarin_options():
    res = runner.invoke(app, ["pgx", "recommend", "--help"], env={"COLUMNS": "160"})
    assert res.exit_code == 0
    for option in ("--age", "--height", "--weight", "--race", "--inducer", "--amiodarone",
                   "VKORC1=A/G", "HLA-B*57:01=positive"):
        assert option in res.output


def test_the_fhir_bundle_carries_codes_and_the_dose():
    from fhir.resources.R4B.bundle import Bundle

    from iatros.pgx.fhir import bundle

    report = from_diplotypes(["CYP2C9=*1/*3", "VKORC1=A/G", "CYP4F2=*1/*3"], ["warfarin"],
                             patient=Patient.build(**ADULT))
    b = Bundle.model_validate(bundle(report, subject="p1"))
    obs = [e.resource for e in b.entry if e.resource.get_resource_type() == "Observation"]
    genotypes = [o for o in obs if o.code.coding[0].code == "84413-4"]
    genes = {c.valueCodeableConcept.text: c.valueCodeableConcept for o in genotypes
             for c in o.component if c.code.coding[0].code == "48018-6"}
    assert [(x.system, x.code) for x in genes["CYP2C9"].coding] == [
        ("http://www.genenames.org/geneId", "HGNC:2623")]
    assert genes["VKORC1"].coding[0].code == "HGNC:23663"
    assert genes["CYP4F2"].coding is None                   # no verified HGNC id: text only
    (implication,) = [o for o in obs if o.code.coding[0].code == "therapeutic-implication"
                      and any(c.code.coding and c.code.coding[0].code == "51963-7" for c in o.component)]
    med = next(c for c in implication.component if c.code.coding and c.code.coding[0].code == "51963-7")
    assert (med.valueCodeableConcept.coding[0].system, med.valueCodeableConcept.coding[0].code) == (
        "http://www.nlm.nih.gov/research/umls/rxnorm", "11289")
    dose = next(c for c in implication.component if c.valueQuantity is not None)
    assert float(dose.valueQuantity.value) == 22.4 and dose.valueQuantity.code == "mg/wk"
    assert dose.valueQuantity.system == "http://unitsofmeasure.org"
    metabolism = [c for c in implication.component if c.code.coding and c.code.coding[0].code == "53040-2"]
    assert [c.valueCodeableConcept.text for c in metabolism] == ["CYP2C9 Intermediate Metabolizer"]
    notes = " ".join(n.text for n in implication.note)
    assert "IWPC input age_decades: 6" in notes and "CYP4F2*3 carrier" in notes
