import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.splits import Split, assert_no_leak, group_split, predefined_split
from iatros.errors import ConfigError, CorruptDataError


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.integers(0, 40), min_size=3, max_size=300),
    seed=st.integers(0, 1000),
    stratify=st.booleans(),
)
def test_group_split_never_leaks_and_covers_every_row(groups, seed, stratify):
    groups = np.array(groups)
    strata = (groups % 2) if stratify else None
    split = group_split(groups, strata=strata, seed=seed)
    rows = np.concatenate([split.train, split.val, split.test])
    assert sorted(rows.tolist()) == list(range(len(groups)))
    assert_no_leak(split, groups)


def test_group_split_keeps_fractions_and_strata():
    rng = np.random.default_rng(0)
    groups = np.arange(1000)
    y = (rng.random(1000) < 0.2).astype(int)
    split = group_split(groups, strata=y, seed=1)
    assert abs(len(split.test) - 150) <= 3 and abs(len(split.val) - 150) <= 3
    for part in (split.train, split.val, split.test):
        assert abs(y[part].mean() - y.mean()) < 0.02


def test_group_split_is_reproducible_per_seed():
    groups = np.repeat(np.arange(50), 3)
    a, b = group_split(groups, seed=7), group_split(groups, seed=7)
    assert np.array_equal(a.test, b.test)
    assert not np.array_equal(a.test, group_split(groups, seed=8).test)


def test_leak_is_detected_and_named():
    split = Split(np.array([0]), np.array([1]), np.array([2]))
    with pytest.raises(CorruptDataError, match="p1"):
        assert_no_leak(split, np.array(["p1", "p2", "p1"]))


def test_predefined_split_rejects_unknown_labels():
    with pytest.raises(CorruptDataError, match="holdout"):
        predefined_split(np.array(["train", "holdout"]))


def test_bad_fractions_are_rejected():
    with pytest.raises(ConfigError):
        group_split(np.arange(10), fractions=(0.5, 0.5, 0.5))


def test_validation_is_carved_from_train_by_group_when_the_dataset_ships_none():
    from iatros.data.splits import carve_validation

    groups = np.repeat(np.arange(100), 2)
    labels = np.where(np.arange(200) < 160, "train", "test")
    split = carve_validation(predefined_split(labels, groups), groups, fraction=0.2, seed=0)
    assert len(split.val) == 32 and len(split.train) == 128 and len(split.test) == 40
    assert_no_leak(split, groups)
    assert set(split.val) <= set(range(160))
