"""Survival task loaders: real packaged data and the DeepSurv files, shapes and leak checks."""

from __future__ import annotations

import numpy as np
import pytest

from iatros.tasks import get_task

PACKAGED = {"survival-whas500": 500, "survival-gbsg2": 686, "survival-veterans": 137,
            "survival-aids": 1151, "survival-flchain": 7874, "survival-gse7390": 198}
DEEPSURV = {"survival-whas": (1310, 328), "survival-gbsg": (1546, 686),
            "survival-metabric": (1523, 381), "survival-support": (7098, 1775)}


@pytest.mark.parametrize("name, n", PACKAGED.items())
def test_packaged_survival_tasks_load_time_and_event(name, n):
    data = get_task(name).load(".")
    assert data.targets.shape == (n, 2)
    assert (data.targets[:, 0] > 0).all() and set(np.unique(data.targets[:, 1])) == {0.0, 1.0}


def test_flchain_drops_the_cause_of_death_column_that_leaks_the_outcome():
    names = get_task("survival-flchain").load(".").feature_names
    assert not any(n.startswith("chapter") for n in names)


@pytest.mark.parametrize("name, sizes", DEEPSURV.items())
def test_deepsurv_splits_keep_the_published_train_test_and_carve_validation(name, sizes, shared_data):
    task = get_task(name)
    data = task.load(shared_data)
    split = task.split(data, seed=0)
    assert len(split.test) == sizes[1]
    assert len(split.train) + len(split.val) == sizes[0] and len(split.val) > 0
    assert set(split.test) == set(np.flatnonzero(data.split == "test"))
