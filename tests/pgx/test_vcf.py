"""VCFs written for known genotypes give the expected diplotypes; no-calls and missing positions
are never read as reference; multi-allelic sites, phasing, the genome build and malformed lines."""

from __future__ import annotations

import pytest

from iatros.errors import ConfigError, CorruptDataError
from iatros.pgx import diplotypes, vcf
from iatros.pgx.recommend import from_vcf
from iatros.pgx.tables import INDETERMINATE, Variant, load
from tests.pgx.vcfs import positions, records, write

GENES = ["CYP2C19", "CYP2D6", "CYP2C9", "TPMT", "NUDT15", "DPYD", "SLCO1B1", "CYP3A5", "VKORC1"]


def _core(gene: str, name: str, build: str) -> frozenset:
    return load().alleles[gene][name].core.get(build) or frozenset()


def _call(tmp_path, gene, build, a, b, **kw):
    t = load()
    lines = records(t, gene, build, _core(gene, a, build), _core(gene, b, build), **kw)
    path = write(tmp_path / f"{gene}.vcf", lines, build=build)
    return diplotypes.call(t, gene, vcf.read(path, t, [gene], build=build))


@pytest.mark.parametrize("build", ["GRCh37", "GRCh38"])
@pytest.mark.parametrize("gene", GENES)
@pytest.mark.parametrize("phased", [True, False])
def test_every_callable_allele_over_the_default_is_found(tmp_path, gene, build, phased):
    """Each allele with core variants on the build, over the build's default allele: the true
    diplotype is among those consistent with the VCF, and a called phenotype is the table's."""
    t = load()
    default = t.genes[gene].default[build]
    wrong, called = [], 0
    for name, allele in t.alleles[gene].items():
        if allele.sv or not allele.core.get(build):
            continue
        r = _call(tmp_path, gene, build, name, default, phased=phased)
        truth = {f"{name}/{default}", f"{default}/{name}"}
        from iatros.pgx.phenotypes import phenotype
        expected = phenotype(gene, name, default, t).phenotype
        found = {r.diplotype} | set(r.candidates)
        if r.status == "called":
            called += 1
            if r.phenotype != expected or not (truth & found or len(r.candidates) >= 12):
                wrong.append(f"{name}/{default}: {r.diplotype or r.candidates} {r.phenotype}")
        elif not (truth & found or len(r.candidates) >= 12):
            wrong.append(f"{name}/{default}: not among {r.candidates} ({r.reasons})")
    assert wrong == [] and called > 0


@pytest.mark.parametrize(("gene", "a", "b", "expected"), [
    ("CYP2C19", "*2", "*17", "Intermediate Metabolizer"),
    ("CYP2C19", "*2", "*2", "Poor Metabolizer"),
    ("TPMT", "*3B", "*3C", "Poor Metabolizer"),
    ("SLCO1B1", "*5", "*1", "Decreased Function"),
    ("CYP3A5", "*3", "*3", "Poor Metabolizer"),
    ("DPYD", "c.1905+1G>A (*2A)", "c.2846A>T", "Poor Metabolizer"),
])
def test_known_genotypes_give_the_expected_diplotype(tmp_path, gene, a, b, expected):
    r = _call(tmp_path, gene, "GRCh38", a, b, phased=True)
    assert r.status == "called" and r.phenotype == expected
    assert r.diplotype in (f"{a}/{b}", f"{b}/{a}")


def test_a_multi_allelic_site_gives_both_alleles(tmp_path):
    """CYP2D6 *8 (C>A) and *14 (C>T) at one position of GRCh37: one record, ALT A,T, GT 1/2."""
    t = load()
    v8, v14 = _core("CYP2D6", "*8", "GRCh37"), _core("CYP2D6", "*14", "GRCh37")
    lines = records(t, "CYP2D6", "GRCh37", v8, v14)
    (pos,) = {v.pos for v in v8 | v14}
    site = [line for line in lines if f"\t{pos}\t" in line][0]
    assert site.split("\t")[4].count(",") >= 1 and site.split("\t")[9] in ("1/2", "2/1")
    r = diplotypes.call(t, "CYP2D6", vcf.read(write(tmp_path / "m.vcf", lines, "GRCh37"), t,
                                              ["CYP2D6"], build="GRCh37"))
    assert r.diplotype in ("*8/*14", "*14/*8") and r.phenotype == "Intermediate Metabolizer"
    assert any("copy number is not assessed" in n for n in r.notes)


def test_a_no_call_is_never_read_as_reference(tmp_path):
    """*2/*38 with the *2 sites no-calls: *38/*38 (normal) and *2/*38 (intermediate) both fit,
    so the answer is indeterminate and names the no-calls."""
    v2 = _core("CYP2C19", "*2", "GRCh38")
    r = _call(tmp_path, "CYP2C19", "GRCh38", "*2", "*38", nocall=set(v2))
    assert r.phenotype == INDETERMINATE and r.status == "indeterminate"
    assert all(any(v.name in n for n in r.notes) for v in v2)
    assert {"*2/*38", "*38/*38"} <= set(r.candidates)
    assert any("missing or no-call" in x for x in r.reasons)


def test_missing_positions_are_listed_and_not_assumed_reference(tmp_path):
    (v3,) = _core("CYP2C19", "*3", "GRCh38")
    r = _call(tmp_path, "CYP2C19", "GRCh38", "*2", "*38", drop={v3})
    assert r.missing_positions == [v3.name]
    # *2/*3 (poor) and *2/*38 (intermediate) both fit: indeterminate, naming the cause
    assert r.phenotype == INDETERMINATE and any("*3" in c for c in r.candidates)


def test_a_missing_position_that_does_not_change_the_phenotype_still_answers(tmp_path):
    t = load()
    # drop a position defining only an allele whose diplotype with *2 is also intermediate
    v2 = _core("CYP2C19", "*2", "GRCh38")
    other = [v for v in positions(t, "CYP2C19", "GRCh38") if v not in v2]
    for v in other:
        r = _call(tmp_path, "CYP2C19", "GRCh38", "*2", "*38", drop={v})
        if r.status == "called":
            assert r.phenotype == "Intermediate Metabolizer" and r.missing_positions == [v.name]
            return
    pytest.fail("no single missing position left the phenotype resolved")


def test_unphased_compound_heterozygotes_are_flagged(tmp_path):
    r = _call(tmp_path, "CYP2C19", "GRCh38", "*2", "*17", phased=False)
    assert r.phased is False and any("unphased" in n for n in r.notes)


def test_the_wrong_build_is_refused_or_indeterminate(tmp_path):
    t = load()
    lines = records(t, "CYP2C19", "GRCh37", _core("CYP2C19", "*2", "GRCh37"), frozenset())
    path = write(tmp_path / "b37.vcf", lines, build="GRCh37")
    with pytest.raises(ConfigError, match="GRCh37.*--build GRCh38"):
        vcf.read(path, t, ["CYP2C19"], build="GRCh38")
    headless = write(tmp_path / "nohead.vcf", lines, build=None)
    r = diplotypes.call(t, "CYP2C19", vcf.read(headless, t, ["CYP2C19"], build="GRCh38"))
    assert r.phenotype == INDETERMINATE  # nothing at the GRCh38 positions: all missing
    guessed = vcf.read(headless, t, ["CYP2C19"])
    assert guessed.build == "GRCh37" and "guessed" in guessed.build_evidence


def test_ref_bases_that_disagree_with_the_build_make_the_gene_indeterminate(tmp_path):
    t = load()
    v2 = min(_core("CYP2C19", "*2", "GRCh38"), key=lambda v: v.pos)
    lines = records(t, "CYP2C19", "GRCh38", frozenset({v2}), frozenset())
    bad = "T" if v2.ref != "T" else "C"
    lines = [line.replace(f"\t{v2.ref}\t{v2.alt}", f"\t{bad}\t{v2.alt}") if f"\t{v2.pos}\t" in line
             else line for line in lines]
    r = diplotypes.call(t, "CYP2C19", vcf.read(write(tmp_path / "r.vcf", lines), t, ["CYP2C19"],
                                               build="GRCh38"))
    assert r.status == "indeterminate" and "REF bases disagree" in r.reasons[0]


def test_malformed_lines_name_the_line(tmp_path):
    t = load()
    lines = records(t, "CYP2C19", "GRCh38", frozenset(), frozenset())
    lines.insert(1, "10\tnot-a-position\t.\tG\tA\t.\tPASS\t.\tGT\t0/1")
    with pytest.raises(CorruptDataError, match=r"line \d+: POS 'not-a-position'"):
        vcf.read(write(tmp_path / "bad.vcf", lines), t, ["CYP2C19"], build="GRCh38")


def test_multi_sample_vcfs_need_a_sample(tmp_path):
    t = load()
    path = tmp_path / "two.vcf"
    path.write_text("##fileformat=VCFv4.2\n##reference=GRCh38\n"
                    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n")
    with pytest.raises(ConfigError, match="2 samples"):
        vcf.read(path, t, ["CYP2C19"])
    with pytest.raises(ConfigError, match="sample 'C' is not in"):
        vcf.read(path, t, ["CYP2C19"], sample="C")


def test_minimal_representation():
    assert vcf.minimal(100, "CTT", "CT") == (100, "CT", "C")
    assert vcf.minimal(100, "GCA", "GTA") == (101, "C", "T")
    assert Variant.parse("22-42524243-CT-C").pos == 42524243


def test_a_whole_panel_from_one_vcf(tmp_path):
    """Every default pair answers from one VCF holding all panel genes."""
    t = load()
    calls = {"CYP2C19": ("*2", "*38"), "CYP2D6": ("*4", "*1"), "CYP2C9": ("*3", "*1"),
             "VKORC1": ("rs9923231", "Reference"), "TPMT": ("*3A", "*1"), "NUDT15": ("*1", "*1"),
             "DPYD": ("Reference", "Reference"), "SLCO1B1": ("*5", "*1"), "CYP3A5": ("*3", "*3"),
             "CYP4F2": ("*1", "*1")}
    lines = []
    for gene, (a, b) in calls.items():
        lines += records(t, gene, "GRCh38", _core(gene, a, "GRCh38"), _core(gene, b, "GRCh38"),
                         phased=True)
    key = {str(c): i for i, c in enumerate([str(x) for x in range(1, 23)] + ["X", "Y"])}
    lines.sort(key=lambda line: (key[line.split("\t")[0]], int(line.split("\t")[1])))
    report = from_vcf(write(tmp_path / "panel.vcf", lines))
    genes = {g["gene"]: g for g in report["genes"]}
    drugs = {d["drug"]: d for d in report["drugs"]}
    assert genes["CYP2C19"]["phenotype"] == "Intermediate Metabolizer"
    assert genes["CYP2D6"]["phenotype"] == "Intermediate Metabolizer"
    assert genes["HLA-B"]["status"] == "indeterminate"
    assert "HLA typing result" in genes["HLA-B"]["reasons"][0]
    assert drugs["clopidogrel"]["status"] == "recommendation"
    assert drugs["codeine"]["status"] == "recommendation"
    assert drugs["tacrolimus"]["phenotypes"] == {"CYP3A5": "Poor Metabolizer"}
    assert drugs["simvastatin"]["status"] == "recommendation"
    assert drugs["fluorouracil"]["phenotypes"] == {"DPYD": "Normal Metabolizer"}
    assert drugs["azathioprine"]["status"] == "recommendation"
    assert drugs["abacavir"]["status"] == "indeterminate"
    assert drugs["warfarin"]["dosing_inputs"]["CYP2C9"] == "*1/*3" or \
        drugs["warfarin"]["dosing_inputs"]["CYP2C9"] == "*3/*1"
    assert drugs["warfarin"]["dosing_inputs"]["VKORC1 rs9923231"].startswith("A/G")
    assert report["input"]["build"] == "GRCh38"
