"""Antolini's time-dependent concordance (c_td, pycox's C-td) against its definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sksurv.metrics import concordance_index_censored

from iatros.evaluate import survival as S
from iatros.evaluate.survival import SurvivalPrediction, evaluate_survival


def _c_td_by_loop(time: np.ndarray, event: np.ndarray, pred: SurvivalPrediction) -> float:
    """Every ordered pair, one at a time: i comparable with j when i's event comes first (or at
    the same time as j's censoring), concordant when S_i(t_i) < S_j(t_i)."""
    def at(j: int, t: float) -> float:
        k = np.searchsorted(pred.times, t, side="right") - 1
        return 1.0 if k < 0 else pred.survival[j, k]

    concordant = comparable = 0
    for i in range(len(time)):
        for j in range(len(time)):
            if event[i] and (time[i] < time[j] or (time[i] == time[j] and not event[j])):
                comparable += 1
                concordant += at(i, time[i]) < at(j, time[i])
    return concordant / comparable


def _weibull_curves(rng: np.random.Generator, n: int, grid: np.ndarray) -> np.ndarray:
    """Curves that cross: each patient has their own scale and shape."""
    scale = np.exp(rng.normal(size=n)) * grid.mean()
    shape = np.exp(0.5 * rng.normal(size=n))
    return np.exp(-(grid[None, :] / scale[:, None]) ** shape[:, None])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 40), seed=st.integers(0, 10_000), chunk=st.integers(1, 50))
def test_c_td_counts_pairs_like_a_double_loop(n, seed, chunk, monkeypatch_module):
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 8, size=n).astype(float)  # many tied times
    event = rng.random(n) < 0.6
    event[0] = True
    time[0] = 1.0  # at least one comparable pair unless all times are 1
    time[-1] = 9.0
    grid = np.array([0.5, 1.0, 2.5, 4.0, 6.0, 7.0])  # ends before the last time
    pred = SurvivalPrediction(rng.normal(size=n), grid, _weibull_curves(rng, n, grid))
    monkeypatch_module.setattr(S, "_PAIR_CHUNK", chunk)
    res = evaluate_survival(time, event, pred, train_time=time, train_event=event, n_boot=0,
                            horizons=[3.0])
    assert res["c_td"]["value"] == pytest.approx(_c_td_by_loop(time, event, pred), abs=1e-12)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_c_td_equals_harrell_for_proportional_hazards_curves():
    """Curves S0(t)^exp(r) never cross, so ranking curves at each event time is ranking r."""
    rng = np.random.default_rng(1)
    risk = rng.normal(size=400)
    time = rng.exponential(np.exp(-risk)) + 1e-3
    censor = rng.exponential(2.0, size=400) + 1e-3
    event, time = time <= censor, np.minimum(time, censor)
    grid = np.sort(time)
    baseline = np.exp(-grid)
    pred = SurvivalPrediction(risk, grid, baseline[None, :] ** np.exp(risk)[:, None])
    res = evaluate_survival(time, event, pred, train_time=time, train_event=event, n_boot=100)
    harrell = concordance_index_censored(event, time, risk)[0]
    assert res["c_td"]["value"] == pytest.approx(harrell, abs=1e-12)
    assert res["c_td"]["ci95"][0] < res["c_td"]["value"] < res["c_td"]["ci95"][1]


def test_c_td_prefers_the_right_curves_when_they_cross():
    """Two patients whose curves cross: C-td judges each pair at the earlier event time, which
    Harrell's C on a single risk score cannot do."""
    grid = np.array([1.0, 2.0, 3.0])
    curves = np.array([[0.5, 0.45, 0.4],   # dies at 1: low early
                       [0.9, 0.2, 0.1],    # dies at 2: low later
                       [0.95, 0.9, 0.85]])  # censored at 3
    time, event = np.array([1.0, 2.0, 3.0]), np.array([True, True, False])
    pred = SurvivalPrediction(np.array([1.0, 0.0, -1.0]), grid, curves)
    res = evaluate_survival(time, event, pred, train_time=time, train_event=event, n_boot=0,
                            horizons=[1.5])
    assert res["c_td"]["value"] == 1.0
    assert res["c_index"]["value"] == 1.0
    flipped = SurvivalPrediction(np.array([1.0, 0.0, -1.0]), grid, curves[[1, 0, 2]])
    worse = evaluate_survival(time, event, flipped, train_time=time, train_event=event, n_boot=0,
                              horizons=[1.5])
    assert worse["c_td"]["value"] == pytest.approx(2 / 3)
