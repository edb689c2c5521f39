"""The molecules benchmark's model names and its validation-only choice of our model."""

from __future__ import annotations

import pytest

from iatros.models.molecules import build_dmpnn
from iatros.train.trainer import TrainConfig
from tests.benchmark_module import load_benchmark

bench = load_benchmark("molecules")


def test_model_names_carry_flags_parameters_and_ensemble_size():
    assert bench.model_and_members("dmpnn") == ("dmpnn", 1, {})
    assert bench.model_and_members("dmpnn+descriptors-x5") == ("dmpnn", 5, {"descriptors": True})
    assert bench.model_and_members("dmpnn+descriptors+aggregation=sum") == (
        "dmpnn", 1, {"descriptors": True, "aggregation": "sum"})
    assert bench.model_and_members("gin+layers=3+dropout=0.2") == (
        "gin", 1, {"layers": 3, "dropout": 0.2})


def test_a_named_recipe_expands_to_settings_the_trainer_and_network_accept():
    model, members, params = bench.model_and_members("dmpnn+recipe=chemprop+descriptors")
    assert (model, members, params["descriptors"]) == ("dmpnn", 1, True)
    assert params["aggregation"] == "norm" and params["scheduler"] == "warmup"
    training = {k: v for k, v in params.items() if k in TrainConfig.__dataclass_fields__}
    assert TrainConfig(**training).patience == 0
    build_dmpnn(8, 1, **{k: v for k, v in params.items() if k not in training})


def test_an_unknown_recipe_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown recipe 'fast'.*chemprop"):
        bench.model_and_members("dmpnn+recipe=fast")


def test_our_model_is_chosen_on_validation_never_on_test():
    runs = [{"model": "a", "seed": 0, "val": 0.5, "test": {"value": 0.1}},
            {"model": "a", "seed": 1, "val": 0.5, "test": {"value": 0.1}},
            {"model": "b", "seed": 0, "val": 0.6, "test": {"value": 0.9}},
            {"model": "b", "seed": 1, "val": 0.7, "test": {"value": 0.9}}]
    assert bench.choose_on_validation(runs, ["a", "b"], lower=True) == "a"
    assert bench.choose_on_validation(runs, ["a", "b"], lower=False) == "b"
    assert bench.choose_on_validation(runs, ["c"], lower=True) is None


def test_a_candidate_run_on_fewer_seeds_is_not_chosen_on_its_smaller_mean():
    runs = [{"model": "a", "seed": 0, "val": 0.1},
            {"model": "b", "seed": 0, "val": 0.3}, {"model": "b", "seed": 1, "val": 0.4}]
    assert bench.choose_on_validation(runs, ["a", "b"], lower=True) == "b"


def _run(model: str, seed: int, val: float, test: float) -> dict:
    return {"set": "esol", "split": "scaffold", "metric": "rmse", "model": model, "seed": seed,
            "val": val, "test": {"value": test}, "train_seconds": 10.0}


def test_the_head_to_head_says_when_only_some_candidates_ran_on_a_set():
    results = [_run("dmpnn", 0, 0.8, 0.7), _run(bench.CHEMPROP, 0, 0.9, 0.75)]
    table = bench.head_to_head("scaffold", results, ["dmpnn", "dmpnn+descriptors"])
    assert table.rows[0][1] == "dmpnn (of 1 run)" and table.rows[0][4] == "ours"
    full = bench.head_to_head("scaffold", results + [_run("dmpnn+descriptors", 0, 0.85, 0.6)],
                              ["dmpnn", "dmpnn+descriptors"])
    assert full.rows[0][1] == "dmpnn"
    partial = bench.head_to_head("scaffold", results + [_run("dmpnn", 1, 0.8, 0.7),
                                                        _run("dmpnn+descriptors", 0, 0.1, 0.6)],
                                 ["dmpnn", "dmpnn+descriptors"])
    assert partial.rows[0][1] == "dmpnn (of 1 run)"
