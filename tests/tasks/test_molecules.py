"""Molecule tasks: the MoleculeNet sets from the shared data folder, `molecules:PATH` on a user's
table with bad rows, the three split rules (scaffold split balanced, seeded, never leaking a
scaffold), and multilabel targets with missing labels in the loss and the metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rdkit")

from iatros.data.splits import Split, assert_no_leak, balanced_group_split  # noqa: E402
from iatros.errors import ConfigError, CorruptDataError  # noqa: E402
from iatros.evaluate import metrics as M  # noqa: E402
from iatros.kinds import Modality, TargetKind  # noqa: E402
from iatros.tasks import get_task  # noqa: E402
from iatros.tasks.molecules import ACYCLIC, MOLECULENET, scaffold_group  # noqa: E402
from iatros.train.losses import MaskedMultilabelLoss  # noqa: E402

# --- splits ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=3, max_size=80), seed=st.integers(0, 99))
def test_balanced_group_split_never_puts_a_group_in_two_parts(sizes, seed):
    groups = np.repeat(np.arange(len(sizes)), sizes)
    split = balanced_group_split(groups, seed=seed)
    rows = np.sort(np.concatenate([split.train, split.val, split.test]))
    assert rows.tolist() == list(range(len(groups)))
    assert_no_leak(split, groups, "scaffold")
    if len(sizes) >= 3:
        assert len(split.val) and len(split.test)


def test_balanced_group_split_fills_parts_by_rows_and_follows_its_seed():
    rng = np.random.default_rng(0)
    groups = np.concatenate([np.zeros(300), rng.integers(1, 400, 700)]).astype(int)
    a, b = balanced_group_split(groups, seed=3), balanced_group_split(groups, seed=3)
    assert all(np.array_equal(a.part(p), b.part(p)) for p in ("train", "val", "test"))
    assert abs(len(a.val) - 100) <= 20 and abs(len(a.test) - 100) <= 20
    assert 0 in set(groups[a.train])  # a scaffold too big for val or test goes to train
    c = balanced_group_split(groups, seed=4)
    assert not np.array_equal(a.test, c.test)


def test_few_large_scaffolds_still_leave_validation_and_test_a_scaffold():
    groups = np.repeat(np.arange(8), 7)
    split = balanced_group_split(groups, seed=0)
    assert all(len(split.part(p)) for p in ("train", "val", "test"))
    assert_no_leak(split, groups, "scaffold")


def test_a_split_putting_a_scaffold_in_two_parts_is_refused():
    groups = np.array(["s1", "s1", "s2", "s3"])
    with pytest.raises(CorruptDataError, match="scaffold.*both train and test"):
        assert_no_leak(Split(np.array([0, 2]), np.array([3]), np.array([1])), groups, "scaffold")


# --- tasks on the shared MoleculeNet files ---------------------------------------------------


def test_every_moleculenet_set_is_a_registered_molecule_task():
    for name, entry in MOLECULENET.items():
        task = get_task(name)
        assert task.modality is Modality.MOLECULE and task.target is entry.kind
        assert task.split_by == "scaffold" and task.default_model == "dmpnn"
    assert len(get_task("toxcast").classes) == 617 and len(get_task("sider").classes) == 27
    assert get_task("tox21").primary_metric == "auroc" and get_task("esol").primary_metric == "rmse"


def test_tox21_loads_with_missing_labels_and_a_scaffold_split(shared_data):
    task = get_task("tox21")
    data = task.load(shared_data)
    assert data.targets.shape[1] == 12 and np.isnan(data.targets).any()
    assert set(np.unique(data.targets[~np.isnan(data.targets)])) == {0.0, 1.0}
    assert data.row_report is not None and (data.row_report["kind"] == "invalid SMILES").any()
    assert data.checks["issues_by_kind"]["conflicting duplicates"] > 0
    split = task.split(data, seed=0)
    sizes = split.sizes()
    assert abs(sizes["test"] / len(data) - 0.1) < 0.02
    scaffolds = np.array([scaffold_group(s) for s in data.inputs])
    assert_no_leak(split, scaffolds, "scaffold")
    assert not np.array_equal(split.test, task.split(data, seed=1).test)


def test_esol_reads_log_solubility_from_its_logp_column(shared_data):
    data = get_task("esol").load(shared_data)
    assert data.targets.dtype == np.float64 and data.targets.min() < -8  # log mol/L, not logP
    assert ACYCLIC in set(data.patient_ids)


@pytest.mark.parametrize("split", ["random", "stratified", "scaffold"])
def test_moleculenet_family_takes_the_split_rule(shared_data, split):
    task = get_task("moleculenet:bbbp", {"split": split})
    data = task.load(shared_data)
    parts = task.split(data, seed=0)
    assert task.split_by == ("scaffold" if split == "scaffold" else "molecule")
    assert_no_leak(parts, data.patient_ids, task.split_by)
    if split == "stratified":
        rates = [data.targets[parts.part(p)].mean() for p in ("train", "val", "test")]
        assert max(rates) - min(rates) < 0.03


def test_an_unknown_split_is_refused():
    with pytest.raises(ConfigError, match="split must be one of scaffold, random, stratified"):
        get_task("moleculenet:bbbp", {"split": "time"})


# --- molecules:PATH ---------------------------------------------------------------------------


def _assay(tmp_path):
    rows = ["CCO,1.0,1,0", "c1ccccc1O,2.0,0,", "not_a_smiles,3.0,1,1", "CCN,,1,0",
            "c1ccncc1,x,0,1", "CC(=O)Oc1ccccc1C(=O)O,1.5,1,1", "C1CCCCC1N,0.5,0,0",
            "CCCC,0.2,,1", "OCC,1.2,0,0"]
    path = tmp_path / "assay.csv"
    path.write_text("structure,pic50,tox_a,tox_b\n" + "\n".join(rows) + "\n")
    return path


def test_molecules_path_regression_reports_bad_rows_and_uses_the_rest(tmp_path):
    path = _assay(tmp_path)
    task = get_task(f"molecules:{path}", {"smiles": "structure", "target": "pic50",
                                          "data_root": str(tmp_path)})
    assert task.target is TargetKind.REGRESSION
    data = task.load(tmp_path)
    report = data.row_report
    assert set(report.loc[report["kind"] != "standardised", "line"]) >= {4, 5, 6}
    assert "CCO" in set(data.inputs) and len(data) == 5  # CCO and OCC merged, averaged
    assert data.targets[list(data.inputs).index("CCO")] == pytest.approx(1.1)


def test_molecules_path_several_targets_make_a_multilabel_task(tmp_path):
    path = _assay(tmp_path)
    task = get_task(f"molecules:{path}", {"smiles": "structure", "targets": ["tox_a", "tox_b"],
                                          "data_root": str(tmp_path), "split": "random"})
    assert task.target is TargetKind.MULTILABEL and task.classes == ("tox_a", "tox_b")
    data = task.load(tmp_path)
    assert np.isnan(data.targets).any() and data.targets.shape[1] == 2
    assert task.extra["options"]["targets"] == ["tox_a", "tox_b"]


def test_molecules_path_refuses_a_missing_column_and_several_regression_targets(tmp_path):
    path = _assay(tmp_path)
    with pytest.raises(ConfigError, match="'potency'.*columns are structure, pic50"):
        get_task(f"molecules:{path}", {"smiles": "structure", "target": "potency",
                                       "data_root": str(tmp_path)})
    with pytest.raises(ConfigError, match="one run per column"):
        get_task(f"molecules:{path}", {"smiles": "structure", "targets": ["pic50", "tox_a"],
                                       "kind": "regression", "data_root": str(tmp_path)})
    with pytest.raises(ConfigError, match="--target"):
        get_task(f"molecules:{path}", {"smiles": "structure", "data_root": str(tmp_path)})


# --- missing labels in the loss and the metrics ----------------------------------------------


def test_the_multilabel_loss_ignores_missing_labels():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]], requires_grad=True)
    target = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    loss = MaskedMultilabelLoss()(logits, target)
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[~torch.isnan(target)], target[~torch.isnan(target)])
    assert torch.isclose(loss, known)
    loss.backward()
    assert logits.grad[0, 1] == 0
    full = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.isclose(MaskedMultilabelLoss()(logits, full),
                         torch.nn.BCEWithLogitsLoss()(logits, full))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_multilabel_metrics_with_missing_labels_match_each_label_on_its_known_rows(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(seed)
    y = (rng.random((60, 3)) < 0.4).astype(float)
    y[:, 0][:2], y[:, 1][:2] = 0, 1
    y[2:4, 0], y[2:4, 1] = 1, 0
    y[rng.random((60, 3)) < 0.3] = np.nan
    y[:4, :2] = [[0, 1], [0, 1], [1, 0], [1, 0]]
    y[:2, 2], y[2:4, 2] = 0, 1
    s = rng.random((60, 3))
    known = ~np.isnan(y)
    auroc = np.mean([roc_auc_score(y[known[:, j], j], s[known[:, j], j]) for j in range(3)])
    ap = np.mean([average_precision_score(y[known[:, j], j], s[known[:, j], j]) for j in range(3)])
    brier = np.mean((s[known] - y[known]) ** 2)
    assert M.score("auroc", y, s, "multilabel") == pytest.approx(auroc)
    assert M.score("auprc", y, s, "multilabel") == pytest.approx(ap)
    assert M.score("brier", y, s, "multilabel") == pytest.approx(brier)
    out = M.evaluate(y, s, "multilabel", n_boot=20)
    assert out["auroc"]["ci95"][0] is not None


def test_multilabel_labels_other_than_0_1_or_missing_are_refused():
    with pytest.raises(ConfigError, match="0/1 labels"):
        M.score("auroc", np.array([[2.0, 0.0], [1.0, 1.0]]), np.full((2, 2), 0.5), "multilabel")


def test_prediction_frame_keeps_missing_labels_empty(tmp_path):
    frame = pd.DataFrame({"target_0": [1.0, np.nan]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    assert pd.read_csv(tmp_path / "p.csv")["target_0"].isna().tolist() == [False, True]
