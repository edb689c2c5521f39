"""Every diplotype of the source tables gives the table's phenotype (100%, mismatches listed);
activity scores and score phenotypes agree with pypgx's own functions."""

from __future__ import annotations

import pytest

from iatros.errors import ConfigError
from iatros.pgx.phenotypes import parse_diplotype, phenotype
from iatros.pgx.tables import INDETERMINATE, PINNED_VERSION, SUPPORTED_GENES, load

DIPLOTYPE_GENES = [g for g in SUPPORTED_GENES if g in load().genes and load().genes[g].method == "Diplotype"]
SCORE_GENES = [g for g in SUPPORTED_GENES if g in load().genes and load().genes[g].method == "Score"]


def test_the_tables_are_the_pinned_pypgx():
    t = load()
    assert t.version == PINNED_VERSION
    assert set(t.source()["files"]) >= {"allele-table.csv", "recommendation-table.csv"}
    assert DIPLOTYPE_GENES == ["CYP2C19", "TPMT", "NUDT15", "SLCO1B1", "CYP3A5"]
    assert SCORE_GENES == ["CYP2D6", "CYP2C9", "DPYD"]


@pytest.mark.parametrize("gene", DIPLOTYPE_GENES)
def test_every_listed_diplotype_gives_the_table_phenotype(gene):
    t = load()
    rows = t.diplotype_rows[gene]
    mismatches = []
    for diplotype, expected in rows:
        a, b = diplotype.split("/")
        got = phenotype(gene, a, b, t).phenotype
        if got != expected:
            mismatches.append(f"{diplotype}: table {expected}, got {got}")
    assert rows and mismatches == [], f"{len(mismatches)} of {len(rows)}: {mismatches[:20]}"


@pytest.mark.parametrize("gene", SCORE_GENES)
def test_every_allele_pair_of_score_genes_matches_pypgx(gene):
    pypgx = pytest.importorskip("pypgx")
    t = load()
    names = [a.name for a in t.alleles[gene].values()]
    by_sum: dict[float, tuple[str, str]] = {}
    mismatches = []
    for name in names:
        theirs = float(pypgx.predict_score(gene, name))
        ours = t.alleles[gene][name].score
        if not ((ours is None and theirs != theirs) or ours == theirs):
            mismatches.append(f"{name}: pypgx {theirs}, ours {ours}")
    for i, a in enumerate(names):
        for b in names[i:]:
            r = phenotype(gene, a, b, t)
            if r.activity_score is not None:
                by_sum.setdefault(r.activity_score, (a, b))
            else:
                assert r.phenotype == INDETERMINATE and r.reasons
    for score, (a, b) in by_sum.items():
        expected = pypgx.predict_phenotype(gene, a, b)
        got = phenotype(gene, a, b, t).phenotype
        if got != expected:
            mismatches.append(f"{a}/{b} (score {score}): pypgx {expected}, ours {got}")
    assert mismatches == []


@pytest.mark.parametrize(("gene", "a", "b", "expected", "score"), [
    ("CYP2D6", "*1", "*4", "Intermediate Metabolizer", 1.0),
    ("CYP2D6", "*1x2", "*2", "Ultrarapid Metabolizer", 3.0),
    ("CYP2D6", "*4", "*5", "Poor Metabolizer", 0.0),
    ("DPYD", "*2A", "Reference", "Intermediate Metabolizer", 1.0),
    ("DPYD", "c.2846A>T", "c.2846A>T", "Intermediate Metabolizer", 1.0),
    ("CYP2C9", "*2", "*3", "Poor Metabolizer", 0.5),
])
def test_activity_scores(gene, a, b, expected, score):
    r = phenotype(gene, a, b)
    assert (r.phenotype, r.activity_score) == (expected, score)


def test_alleles_without_a_value_are_indeterminate_with_the_reason():
    r = phenotype("CYP2C9", "*1", "*7")
    assert r.status == "indeterminate" and "*7" in r.reasons[0]


@pytest.mark.parametrize(("text", "message"), [
    ("CYP2C19*1/*2", "expected GENE=ALLELE/ALLELE"),
    ("CYP2C19=*1", "expected GENE=ALLELE/ALLELE"),
    ("FOO1=*1/*2", "unknown or unsupported gene 'FOO1'"),
    ("CYP2C19=*1/*99", "unknown CYP2C19 allele '*99'"),
])
def test_bad_diplotypes_name_the_cause(text, message):
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        gene, a, b = parse_diplotype(text)
        phenotype(gene, a, b)
