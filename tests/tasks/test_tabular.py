import numpy as np

from iatros.data.splits import assert_no_leak
from iatros.tasks import get_task


def test_wdbc_has_569_patients_with_212_malignant():
    data = get_task("breast-cancer-wdbc").load(".")
    assert data.inputs.shape == (569, 30)
    assert int(data.targets.sum()) == 212
    assert len(set(data.patient_ids)) == 569


def test_whas500_one_year_mortality_counts_and_attributes():
    task = get_task("whas500-mortality-1y")
    data = task.load(".")
    assert len(data) == 500 and int(data.targets.sum()) == 138
    assert set(data.attributes["sex"]) == {"male", "female"}
    assert (data.attributes["sex"] == "female").sum() == 200
    assert set(data.attributes["age_group"]) == {"<65", "65-79", ">=80"}
    assert "lenfol" not in data.feature_names and "fstat" not in data.feature_names


def test_task_split_is_by_patient_and_stratified():
    task = get_task("whas500-mortality-1y")
    data = task.load(".")
    split = task.split(data, seed=0)
    assert_no_leak(split, data.patient_ids)
    rates = [data.targets[p].mean() for p in (split.train, split.val, split.test)]
    assert max(rates) - min(rates) < 0.03
    assert sum(split.sizes().values()) == len(data)
    assert not np.array_equal(split.test, task.split(data, seed=1).test)
