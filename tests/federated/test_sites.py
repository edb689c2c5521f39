"""Sites of a federated run: from a column, from a seeded Dirichlet split, and whether each can
take part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.splits import Split
from iatros.errors import ConfigError
from iatros.federated.sites import SiteRows, dirichlet_sites, site_labels, site_problems, site_rows
from iatros.kinds import TargetKind
from iatros.tasks import TaskData


def _data(n: int = 60) -> TaskData:
    rng = np.random.default_rng(0)
    return TaskData(inputs=rng.normal(size=(n, 3)), targets=(np.arange(n) % 3 == 0).astype(int),
                    patient_ids=np.array([f"p{i // 2}" for i in range(n)]),
                    attributes=pd.DataFrame({"hospital": np.where(np.arange(n) < n // 2, "A", "B"),
                                             "stay_id": np.arange(n)}))


def test_sites_come_from_a_column_of_the_records():
    labels = site_labels(_data(), "hospital", seed=0)
    assert set(labels) == {"A", "B"} and (labels[:30] == "A").all()


def test_an_unknown_site_column_names_the_columns_that_exist():
    with pytest.raises(ConfigError, match="hospital.*dirichlet"):
        site_labels(_data(), "ward", seed=0)


def test_a_malformed_dirichlet_spec_says_what_is_expected():
    with pytest.raises(ConfigError, match="dirichlet:K"):
        site_labels(_data(), "dirichlet:x", seed=0)
    with pytest.raises(ConfigError, match="K must be >= 2"):
        site_labels(_data(), "dirichlet:1", seed=0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(20, 300), k=st.integers(2, 6), alpha=st.floats(0.05, 50), seed=st.integers(0, 99))
def test_dirichlet_sites_keep_each_patient_at_one_site_and_repeat_with_the_seed(n, k, alpha, seed):
    patients = np.array([f"p{i // 3}" for i in range(n)])
    targets = np.random.default_rng(seed).integers(0, 2, n)
    labels = dirichlet_sites(targets, patients, k, alpha, seed)
    assert len(labels) == n
    assert set(labels) <= {f"site-{i + 1}" for i in range(k)}
    per_patient = pd.Series(labels).groupby(patients).nunique()
    assert (per_patient == 1).all()
    assert (dirichlet_sites(targets, patients, k, alpha, seed) == labels).all()


def test_dirichlet_sites_are_not_aligned_with_the_split():
    """The split and the site draw use different random streams: every site gets test rows."""
    n = 600
    data = TaskData(inputs=np.zeros((n, 1)), targets=np.arange(n) % 2,
                    patient_ids=np.arange(n).astype(str), attributes=pd.DataFrame(index=range(n)))
    labels = site_labels(data, "dirichlet:3:10", seed=0)
    rng = np.random.default_rng(0)
    order = rng.permutation(n)
    split = Split(order[:420], order[420:510], order[510:])
    for site in site_rows(labels, split):
        assert len(site.test) > 10, site


def test_site_rows_partition_each_part_of_the_split():
    labels = np.array(["A"] * 5 + ["B"] * 5)
    split = Split(np.array([0, 1, 5, 6]), np.array([2, 7]), np.array([3, 4, 8, 9]))
    rows = {s.label: s for s in site_rows(labels, split)}
    assert rows["A"].train.tolist() == [0, 1] and rows["B"].test.tolist() == [8, 9]


def test_a_small_or_one_class_site_is_reported_with_its_reasons():
    site = SiteRows("A", np.arange(10), np.array([10]), np.array([]))
    problems = site_problems(site, np.zeros(11, dtype=int), np.arange(11).astype(str),
                             TargetKind.BINARY, min_patients=20)
    assert any("10 training patients" in p for p in problems)
    assert any("one outcome class" in p for p in problems)
    assert "no test patients" in problems


def test_a_site_whose_validation_metric_is_undefined_is_left_out_of_the_mean():
    from iatros.federated.apps import _mean_metrics

    mean = _mean_metrics([(10.0, {"val_auroc": 0.8}), (30.0, {"val_auroc": float("nan")}),
                          (30.0, {"val_auroc": 0.6})])
    assert mean["val_auroc"] == pytest.approx((10 * 0.8 + 30 * 0.6) / 40)
