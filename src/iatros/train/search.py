"""Hyper-parameter search spaces: parsing `name=v1,v2,...` options into trials and choosing one.

The search itself (training each trial through the one Trainer) lives in `iatros.api.tune`; this
module only enumerates the settings to try, splits each into model and training settings, and
picks the best trial by its validation score, so the test split never guides a choice.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import fields
from typing import Any

from iatros.errors import ConfigError
from iatros.train.trainer import TrainConfig

TRAIN_KEYS = frozenset(f.name for f in fields(TrainConfig)) - {"seed", "progress"}


def parse_value(text: str) -> Any:
    """`64x64` -> (64, 64); `1e-3` -> 0.001; `8` -> 8; `true`/`false` -> bool; else the text."""
    text = text.strip()
    if "x" in text and all(part.isdigit() for part in text.split("x")):
        return tuple(int(part) for part in text.split("x"))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _assignments(options: list[str], form: str, example: str) -> dict[str, str]:
    """NAME=TEXT options as {name: text}; a malformed or repeated one is a clear error."""
    out: dict[str, str] = {}
    for option in options:
        name, sep, text = option.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not text.strip():
            raise ConfigError(f"{option!r} is not {form} (e.g. {example})")
        if name in out:
            raise ConfigError(f"{name!r} is given twice; give each name once")
        out[name] = text
    return out


def parse_space(options: list[str]) -> dict[str, list[Any]]:
    """`["hidden=32x32,64x64", "dropout=0,0.2"]` -> {"hidden": [(32, 32), (64, 64)], ...}."""
    found = _assignments(options, "NAME=V1,V2,...", "dropout=0,0.1,0.3 or hidden=32x32,64x64x64")
    if not found:
        raise ConfigError("give at least one search option NAME=V1,V2,...")
    return {name: [parse_value(v) for v in text.split(",") if v.strip()]
            for name, text in found.items()}


def parse_params(options: list[str]) -> dict[str, Any]:
    """`["widen_factor=0.5", "lr=3e-3"]` -> {"widen_factor": 0.5, "lr": 0.003}: one value each."""
    found = _assignments(options, "NAME=VALUE", "widen_factor=0.5, hidden=64x64 or lr=3e-3")
    return {name: parse_value(text) for name, text in found.items()}


def grid_trials(space: dict[str, list[Any]], max_trials: int, seed: int) -> list[dict[str, Any]]:
    """Every combination when the grid has at most `max_trials`, else a seeded random sample."""
    if max_trials < 1:
        raise ConfigError(f"max_trials must be at least 1, not {max_trials}")
    names = list(space)
    size = math.prod(len(space[n]) for n in names)
    if size <= max_trials:
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*space.values())]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(size), max_trials))
    combos = []
    for index in chosen:
        combo = {}
        for name in reversed(names):
            index, k = divmod(index, len(space[name]))
            combo[name] = space[name][k]
        combos.append({n: combo[n] for n in names})
    return combos


def split_trial(trial: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model params, training settings) of one trial: TrainConfig's fields go to training."""
    params = {k: v for k, v in trial.items() if k not in TRAIN_KEYS}
    train = {k: v for k, v in trial.items() if k in TRAIN_KEYS}
    return params, train


def best_trial(scores: list[float | None], higher_is_better: bool) -> int:
    """Index of the best validation score; trials without a finite score never win."""
    usable = [(s, i) for i, s in enumerate(scores) if s is not None and math.isfinite(s)]
    if not usable:
        raise ConfigError("no trial gave a finite validation score; widen or change the search")
    sign = -1.0 if higher_is_better else 1.0
    return min(usable, key=lambda t: (sign * t[0], t[1]))[1]
