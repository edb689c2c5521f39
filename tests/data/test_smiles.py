"""SMILES standardisation with what changed recorded, molecule tables read row by row (bad rows
reported by line, the rest kept), scaffolds, featurisation and Tanimoto similarity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rdkit")

from iatros.data.formats.smiles import (  # noqa: E402
    murcko_scaffold,
    parse,
    read_molecule_table,
    standardise,
)
from iatros.data.transforms.molecules import (  # noqa: E402
    ATOM_FEATURES,
    BOND_FEATURES,
    GraphDataset,
    descriptor_names,
    descriptors,
    domain_bits,
    fingerprints,
    mol_graph,
    nearest_similarity,
)
from iatros.errors import ConfigError, CorruptDataError  # noqa: E402


def test_standardise_keeps_the_largest_fragment_and_neutralises_recording_each_step():
    out = standardise("[Na+].CC(=O)[O-]")
    assert out.smiles == "CC(=O)O"
    assert out.changes[0].startswith("kept the largest fragment (removed [Na+])")
    assert "neutralised charges" in out.changes
    assert standardise("CCO").changes == ()
    # the canonical form does not depend on how the SMILES was written
    assert standardise("OCC").smiles == standardise("C(O)C").smiles == "CCO"


def test_tautomers_are_canonicalised_only_when_asked():
    assert standardise("Oc1ccccn1").changes == ()
    assert standardise("Oc1ccccn1", tautomer=True).changes == ("canonical tautomer",)


@pytest.mark.parametrize(("smiles", "says"), [
    ("C1CC", "unclosed ring"), ("xyz", "unparseable"), ("CN(C)(C)(C)C", "valence"),
    ("c1cccc1", "kekulize"), ("", "empty"), ("C C", "whitespace")])
def test_invalid_smiles_are_explained(smiles, says):
    out = standardise(smiles)
    assert not out.valid and says in out.error.lower()


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="CNOcn()=#[]+-123@/\\HBrlS.*", max_size=30))
def test_any_string_standardises_or_says_why_and_the_result_reads_back(text):
    out = standardise(text)
    if out.valid:
        mol, error = parse(out.smiles)
        assert mol is not None, error
        assert standardise(out.smiles).smiles == out.smiles  # idempotent
    else:
        assert out.error


def test_scaffolds():
    assert murcko_scaffold("CCc1ccccc1CC1CC1") == "c1ccc(CC2CC2)cc1"
    assert murcko_scaffold("CCO") == ""


def _write(tmp_path, text):
    path = tmp_path / "assay.csv"
    path.write_text(text)
    return path


def test_a_table_reports_every_bad_row_by_line_and_keeps_the_rest(tmp_path):
    path = _write(tmp_path, "smiles,y\n"
                            "CCO,1.5\n"           # line 2: fine
                            "C1CC,2.0\n"          # line 3: unparseable
                            "CCN,\n"              # line 4: empty value
                            "CCC,abc\n"           # line 5: not a number
                            "OCC,2.5\n"           # line 6: duplicate of line 2, averaged
                            "c1ccccc1,3\n")
    table = read_molecule_table(path, "smiles", ["y"])
    assert list(table.smiles) == ["CCO", "c1ccccc1"]
    assert table.values[:, 0].tolist() == [2.0, 3.0]
    problems = {i.line: i for i in table.issues}
    assert problems[3].kind == "invalid SMILES" and "unclosed ring" in problems[3].problem
    assert problems[4].kind == "missing value" and problems[4].action == "row skipped"
    assert [(i.kind, i.action) for i in table.issues if i.line == 5] == [
        ("not a number", "row skipped")]
    assert problems[2].kind == "averaged duplicates" and "lines 2, 6" in problems[2].problem
    report = table.report()
    assert {3, 4, 5}.issubset(set(report["line"]))
    assert table.summary()["issues_by_kind"]["invalid SMILES"] == 1


def test_conflicting_duplicate_labels_become_missing_and_other_labels_stay(tmp_path):
    path = _write(tmp_path, "smiles,a,b\nCCO,1,0\nOCC,0,0\nCCN,1,\nCCC,2,1\n")
    table = read_molecule_table(path, "smiles", ["a", "b"], labels=True, require_all=False)
    rows = dict(zip(table.smiles, table.values.tolist(), strict=True))
    assert np.isnan(rows["CCO"][0]) and rows["CCO"][1] == 0  # a conflicts, b agrees
    assert rows["CCN"][0] == 1 and np.isnan(rows["CCN"][1])
    assert np.isnan(rows["CCC"][0]) and rows["CCC"][1] == 1  # "2" is not a label
    kinds = {i.kind for i in table.issues}
    assert {"conflicting duplicates", "label not 0 or 1"} <= kinds


def test_a_missing_column_names_the_columns_there_are(tmp_path):
    path = _write(tmp_path, "smiles,y\nCCO,1\n")
    with pytest.raises(ConfigError, match="target column.*'nope'.*columns are smiles, y"):
        read_molecule_table(path, "smiles", ["nope"])
    with pytest.raises(ConfigError, match="SMILES column"):
        read_molecule_table(path, "structure", ["y"])


def test_a_table_without_a_usable_molecule_is_an_error(tmp_path):
    path = _write(tmp_path, "smiles,y\nC1CC,1\nxyz,2\n")
    with pytest.raises(CorruptDataError, match="no usable molecule.*line 2"):
        read_molecule_table(path, "smiles", ["y"])


def test_graphs_follow_rdkit_atom_order_with_both_directions_of_each_bond():
    g = mol_graph("CC(=O)O")
    assert g.n_atoms == 4 and g.n_edges == 6
    assert g.atom_features().shape == (4, ATOM_FEATURES)
    assert g.bond_features.shape == (6, BOND_FEATURES)
    assert np.array_equal(g.src[::2], g.dst[1::2]) and np.array_equal(g.dst[::2], g.src[1::2])
    assert mol_graph("[Na+]").n_edges == 0
    dataset = GraphDataset(["C", "CC(=O)O"], [0, 1], target_dtype=__import__("torch").float32)
    item, _ = dataset[0]
    assert item["atoms"].shape == (4, ATOM_FEATURES) and int(item["atom_mask"].sum()) == 1
    assert int(dataset[1][0]["edge_mask"].sum()) == 6


def test_fingerprints_descriptors_and_similarity():
    fp = fingerprints(["CCO", "CCO", "c1ccccc1"])
    assert fp.shape == (3, 2048) and np.array_equal(fp[0], fp[1])
    d = descriptors(["CCO"])
    assert d.shape == (1, len(descriptor_names()))
    bits = domain_bits(["CCO", "CCCO", "c1ccccc1"])
    best, where = nearest_similarity(bits, bits, exclude_self=True)
    assert where[0] == 1 and 0 < best[0] < 1
    same, _ = nearest_similarity(bits[:1], bits)
    assert same[0] == 1.0
