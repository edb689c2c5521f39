"""Survival models: DeepSurv, discrete-time logistic hazard, DeepHit, and Cox / RSF baselines.

Targets are a float array (N, 2): column 0 the time (> 0), column 1 the event (0 = censored,
1 = event, or 1..K for competing risks). Every model gives, for new rows, a risk score (higher
means an earlier event) and a survival curve S(t|x) on a grid of times, as the plain tuple
`(risk, times, survival)` that the evaluation module wraps.

The networks are TabularMLP subclasses, so imputation and scaling stay in the checkpoint; the
time grid (cut points, Breslow baseline hazard) lives in buffers for the same reason.
Pipeline for a network: build -> fit_preprocessing(x) -> fit_survival_head(model, time, event)
-> train with survival_loss_for(model) -> fit_survival_baseline(model, x, time, event) -> save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import ModelSpec, fit_preprocessing, register_model
from iatros.models.tabular import TabularMLP, tabular_width

SurvivalCurves = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(risk (N,), times (T,), survival (N, T)): what every survival model predicts."""


# -- targets ----------------------------------------------------------------------------------
def as_time_event(targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) float arrays from an (N, 2) array or a scikit-survival structured array."""
    y = np.asarray(targets)
    if y.dtype.names is not None:
        if len(y.dtype.names) != 2:
            raise ConfigError(f"survival targets need two fields (event, time), got {y.dtype.names}")
        a, b = y.dtype.names
        event_name, time_name = (a, b) if y.dtype[a].kind in "bi" and y.dtype[b].kind == "f" else (b, a)
        return y[time_name].astype(np.float64), y[event_name].astype(np.float64)
    y = y.astype(np.float64)
    if y.ndim != 2 or y.shape[1] != 2:
        raise ConfigError(f"survival targets must be (N, 2) [time, event], got shape {y.shape}")
    return y[:, 0], y[:, 1]


def to_structured(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """scikit-survival's target: a structured array of (event: bool, time: float)."""
    out = np.empty(len(time), dtype=[("event", bool), ("time", np.float64)])
    out["event"] = np.asarray(event) > 0
    out["time"] = np.asarray(time, dtype=np.float64)
    return out


def _check_targets(time: np.ndarray, event: np.ndarray, n_risks: int | None = None) -> None:
    """Times finite and > 0; event codes integers >= 0 (at most `n_risks`); at least one event."""
    if len(time) != len(event) or len(time) == 0:
        raise ConfigError(f"survival times ({len(time)}) and events ({len(event)}) must be non-empty "
                          f"and of equal length")
    if not np.all(np.isfinite(time)) or np.any(time <= 0):
        raise ConfigError("survival times must be finite and > 0")
    codes = np.unique(event)
    if (np.any(codes != np.round(codes)) or codes.min() < 0
            or (n_risks is not None and codes.max() > n_risks)):
        raise ConfigError(f"event codes must be integers in 0..{n_risks or 'K'}, got {codes.tolist()}")
    if not np.any(event > 0):
        raise ConfigError("the training rows contain no event; a survival model cannot be fitted")


# -- discrete time grid -----------------------------------------------------------------------
def make_cuts(time: np.ndarray, event: np.ndarray, n_intervals: int) -> np.ndarray:
    """`n_intervals` strictly increasing cut points at quantiles of the event times (float32).

    Interval j is (cuts[j-1], cuts[j]] with cuts[-1] = 0; the last cut is the largest event time.
    With fewer distinct quantiles than intervals, other event times fill in, and with fewer
    distinct event times still, cuts just past the last one pad the grid (the shape is fixed).
    """
    t_ev = np.asarray(time, dtype=np.float32)[np.asarray(event) > 0]
    if len(t_ev) == 0:
        raise ConfigError("cannot place cut points: no event in the training rows")
    probs = np.arange(1, n_intervals + 1) / n_intervals
    cuts = np.unique(np.quantile(t_ev, probs, method="inverted_cdf").astype(np.float32))
    if len(cuts) < n_intervals:
        rest = np.setdiff1d(np.unique(t_ev), cuts)
        need = n_intervals - len(cuts)
        if len(rest) > need:
            rest = rest[np.round(np.linspace(0, len(rest) - 1, need)).astype(int)]
        cuts = np.unique(np.concatenate([cuts, rest]))
    if len(cuts) < n_intervals:
        extra = cuts[-1] * (1 + 1e-3 * np.arange(1, n_intervals - len(cuts) + 1, dtype=np.float32))
        cuts = np.concatenate([cuts, extra.astype(np.float32)])
    return cuts


def discretize(time: torch.Tensor, event: torch.Tensor,
               cuts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label transform: (time, event) -> (interval index, event code), both long.

    An event maps to the interval holding its time. A censored row maps to the last interval it
    is known to have survived in full (-1: censored before the first cut, no information), as
    pycox's `LabTransDiscreteTime` does. Rows past the last cut count as surviving every interval.
    """
    cuts = cuts.to(time.device)
    time = time.to(cuts.dtype)   # compare in the cuts' precision: a time equal to a cut stays equal
    m = cuts.numel()
    j = torch.searchsorted(cuts, time.contiguous(), right=False)   # first cut >= t
    beyond = j >= m
    code = torch.where(beyond, torch.zeros_like(event), event).round().long()
    at_cut = ~beyond & (cuts[j.clamp(max=m - 1)] == time)
    censored_idx = torch.where(beyond, torch.full_like(j, m - 1), torch.where(at_cut, j, j - 1))
    return torch.where(code > 0, j, censored_idx), code


# -- Breslow baseline -------------------------------------------------------------------------
class BreslowBaseline:
    """Breslow estimate of the baseline cumulative hazard H0 from a Cox model's linear predictor.

    With it a log-risk f(x) becomes a curve, S(t|x) = exp(-H0(t) exp(f(x))), on the grid of
    unique training event times.
    """

    def fit(self, log_risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> BreslowBaseline:
        lp = np.asarray(log_risk, dtype=np.float64).reshape(-1)
        time = np.asarray(time, dtype=np.float64)
        event = np.asarray(event) > 0
        order = np.argsort(time, kind="stable")
        t, e, r = time[order], event[order], np.exp(lp[order] - lp.max())
        uniq, start = np.unique(t, return_index=True)
        at_risk = np.cumsum(r[::-1])[::-1][start] * np.exp(lp.max())   # sum over t_j >= u
        deaths = np.add.reduceat(e.astype(np.float64), start)
        keep = deaths > 0
        self.times_ = uniq[keep]
        self.cumhaz_ = np.cumsum(deaths[keep] / at_risk[keep])
        return self

    def cumulative_hazard(self, times: np.ndarray) -> np.ndarray:
        """H0 at arbitrary times (a right-continuous step function, 0 before the first event)."""
        idx = np.searchsorted(self.times_, np.asarray(times, dtype=np.float64), side="right")
        return np.concatenate([[0.0], self.cumhaz_])[idx]

    def survival(self, log_risk: np.ndarray, times: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(times, S (N, T)); `times` defaults to the training event times."""
        times = self.times_ if times is None else np.asarray(times, dtype=np.float64)
        lp = np.asarray(log_risk, dtype=np.float64).reshape(-1, 1)
        return times, np.exp(-self.cumulative_hazard(times)[None, :] * np.exp(lp))


# -- networks ---------------------------------------------------------------------------------
def _resize_baseline(module: nn.Module, state_dict: dict[str, Any], prefix: str) -> None:
    """The baseline's length is the number of training event times: take it from the checkpoint."""
    for name in ("baseline_times", "baseline_cumhaz"):
        if prefix + name in state_dict:
            current = getattr(module, name)
            setattr(module, name, torch.zeros_like(state_dict[prefix + name], device=current.device,
                                                   dtype=current.dtype))


class DeepSurvNet(TabularMLP):
    """DeepSurv (Katzman et al. 2018): one output, the log-risk, trained on the Cox partial
    likelihood; the Breslow baseline hazard, fitted after training, lives in buffers."""

    survival_name = "deepsurv"

    def __init__(self, n_inputs: int, hidden: tuple[int, ...] = (32, 32), dropout: float = 0.1,
                 ties: str = "efron", **body: Any) -> None:
        super().__init__(n_inputs, 1, hidden=hidden, dropout=dropout, **body)
        if ties not in ("efron", "breslow"):
            raise ConfigError(f"ties must be 'efron' or 'breslow', not {ties!r}")
        self.ties = ties
        self.register_buffer("baseline_times", torch.zeros(0))
        self.register_buffer("baseline_cumhaz", torch.zeros(0))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        _resize_baseline(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def loss_params(self) -> dict[str, Any]:
        return {"ties": self.ties}


class CoxHead(nn.Module):
    """A Cox (DeepSurv-style) survival head on any encoder with one output: the encoder's output
    is the log-risk, trained on the partial likelihood; the Breslow baseline lives in buffers.

    This is how an image network (or any other modality's encoder) predicts survival curves.
    """

    survival_name = "deepsurv"

    def __init__(self, encoder: nn.Module, ties: str = "efron") -> None:
        super().__init__()
        if ties not in ("efron", "breslow"):
            raise ConfigError(f"ties must be 'efron' or 'breslow', not {ties!r}")
        self.encoder, self.ties = encoder, ties
        if hasattr(encoder, "cam_layer"):
            self.cam_layer = f"encoder.{encoder.cam_layer}"
        self.register_buffer("baseline_times", torch.zeros(0))
        self.register_buffer("baseline_cumhaz", torch.zeros(0))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        _resize_baseline(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Any) -> torch.Tensor:
        return self.encoder(x).reshape(-1)

    def fit_preprocessing(self, x: Any) -> CoxHead:
        """Pass the training rows to an encoder that learns preprocessing (e.g. TabularMLP)."""
        self.encoder.fit_preprocessing(x)
        return self

    def loss_params(self) -> dict[str, Any]:
        return {"ties": self.ties}


COX_MODELS = (DeepSurvNet, CoxHead)


class _DiscreteTimeNet(TabularMLP):
    """A TabularMLP over a fixed grid of `n_intervals` cut points kept in the `cuts` buffer.

    Its curves are given at `interpolate` evenly spaced times per interval, read between the cuts
    as pycox's `interpolate` does (constant hazard for the logistic hazard, constant density for
    DeepHit), so events inside one interval are not all tied; `interpolate=1` gives the cuts only.
    """

    survival_name = ""

    def __init__(self, n_inputs: int, n_outputs: int, hidden: tuple[int, ...], dropout: float,
                 n_intervals: int, interpolate: int = 10, **body: Any) -> None:
        if n_intervals < 1 or interpolate < 1:
            raise ConfigError(f"n_intervals and interpolate must be >= 1, got {n_intervals}, {interpolate}")
        super().__init__(n_inputs, n_outputs, hidden=hidden, dropout=dropout, **body)
        self.n_intervals = n_intervals
        self.interpolate = int(interpolate)
        self.register_buffer("cuts", torch.zeros(n_intervals))

    @property
    def head_fitted(self) -> bool:
        return bool(self.cuts[-1] > 0)


class LogisticHazardNet(_DiscreteTimeNet):
    """Discrete-time logistic hazard (Gensheimer & Narasimhan 2019; pycox LogisticHazard):
    one logit of the hazard per interval, S(t_j) = prod_{k<=j} (1 - h_k)."""

    survival_name = "logistic-hazard"

    def __init__(self, n_inputs: int, hidden: tuple[int, ...] = (32, 32), dropout: float = 0.1,
                 n_intervals: int = 20, interpolate: int = 10, **body: Any) -> None:
        super().__init__(n_inputs, n_intervals, hidden, dropout, n_intervals, interpolate, **body)

    def loss_params(self) -> dict[str, Any]:
        return {}


class DeepHitNet(_DiscreteTimeNet):
    """DeepHit (Lee et al. 2018; pycox DeepHitSingle / DeepHit): a probability mass over
    (risk, interval) pairs plus one 'beyond the last cut' cell, i.e. n_risks * n_intervals + 1
    cells with the last logit fixed at 0; event codes 1..n_risks are competing causes."""

    survival_name = "deephit"

    def __init__(self, n_inputs: int, hidden: tuple[int, ...] = (32, 32), dropout: float = 0.1,
                 n_intervals: int = 20, n_risks: int = 1, alpha: float = 0.2,
                 sigma: float = 0.1, interpolate: int = 10, **body: Any) -> None:
        if n_risks < 1 or not 0 <= alpha <= 1 or sigma <= 0:
            raise ConfigError(f"DeepHit needs n_risks >= 1, 0 <= alpha <= 1, sigma > 0; got "
                              f"{n_risks}, {alpha}, {sigma}")
        super().__init__(n_inputs, n_risks * n_intervals, hidden, dropout, n_intervals, interpolate,
                         **body)
        self.n_risks, self.alpha, self.sigma = n_risks, alpha, sigma

    def loss_params(self) -> dict[str, Any]:
        return {"n_risks": self.n_risks, "alpha": self.alpha, "sigma": self.sigma}


SurvivalNet = DeepSurvNet | CoxHead | LogisticHazardNet | DeepHitNet


def _hidden(params: dict[str, Any]) -> dict[str, Any]:
    params = dict(params)
    if "hidden" in params:
        params["hidden"] = tuple(params["hidden"])
    return params


def build_deepsurv(n_inputs: int, n_outputs: int = 1, **params: Any) -> DeepSurvNet:
    """`n_outputs` is ignored: DeepSurv has one output."""
    return DeepSurvNet(n_inputs, **_hidden(params))


def build_logistic_hazard(n_inputs: int, n_outputs: int = 0, **params: Any) -> LogisticHazardNet:
    """`n_outputs` is ignored: the width is `n_intervals`."""
    return LogisticHazardNet(n_inputs, **_hidden(params))


def build_deephit(n_inputs: int, n_outputs: int = 0, **params: Any) -> DeepHitNet:
    """`n_outputs` is ignored: the width is `n_risks * n_intervals`."""
    return DeepHitNet(n_inputs, **_hidden(params))


def _survival_net(model: nn.Module) -> SurvivalNet:
    if not isinstance(model, (*COX_MODELS, LogisticHazardNet, DeepHitNet)):
        raise ConfigError(f"{type(model).__name__} is not a survival network")
    return model


def fit_survival_head(model: nn.Module, train_time: np.ndarray, train_event: np.ndarray) -> nn.Module:
    """Before training: place the discrete models' cut points (quantiles of training event times).

    Checks the targets for every model; DeepSurv has no grid to fit before training.
    """
    model = _survival_net(model)
    time = np.asarray(train_time, dtype=np.float64).reshape(-1)
    event = np.asarray(train_event, dtype=np.float64).reshape(-1)
    _check_targets(time, event, model.n_risks if isinstance(model, DeepHitNet) else None)
    if isinstance(model, _DiscreteTimeNet):
        cuts = make_cuts(time, event, model.n_intervals)
        model.cuts.copy_(torch.as_tensor(cuts, dtype=torch.float32))
        _start_at_marginal_hazard(model, time, event)
    return model


def _marginal_hazard(model: _DiscreteTimeNet, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Discrete hazard per interval of the training set (events / at risk), clipped away from 0, 1."""
    idx, code = discretize(torch.as_tensor(time), torch.as_tensor(event), model.cuts)
    idx, code = idx.numpy(), code.numpy()
    m = model.n_intervals
    at_risk = np.array([(idx >= j).sum() for j in range(m)], dtype=np.float64)
    events = np.array([((idx == j) & (code > 0)).sum() for j in range(m)], dtype=np.float64)
    return np.clip(np.divide(events, at_risk, out=np.zeros(m), where=at_risk > 0), 1e-4, 1 - 1e-4)


@torch.no_grad()
def _start_at_marginal_hazard(model: _DiscreteTimeNet, time: np.ndarray, event: np.ndarray) -> None:
    """Start the output layer at the population curve (bias) with small weights, so training
    refines calibrated hazards instead of climbing down from h = 0.5 per interval."""
    last = model.net[-1]
    h = _marginal_hazard(model, time, event)
    if isinstance(model, LogisticHazardNet):
        bias = np.log(h / (1 - h))
    elif model.n_risks == 1:  # DeepHit: log pmf relative to the fixed 0 logit of the tail
        surv = np.cumprod(1 - h)
        pmf = np.clip(np.r_[1.0, surv[:-1]] - surv, 1e-6, None)
        bias = np.log(pmf / max(surv[-1], 1e-6))
    else:
        return
    last.bias.copy_(torch.as_tensor(bias, dtype=last.bias.dtype))
    last.weight.mul_(0.1)


@torch.no_grad()
def predict_outputs(model: nn.Module, x: Any, batch_size: int = 4096) -> np.ndarray:
    """Raw network outputs for feature rows, in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    try:
        outs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs).numpy().astype(np.float64) if outs else np.zeros((0, 1))


def fit_survival_baseline(model: nn.Module, x_train: Any, train_time: np.ndarray,
                          train_event: np.ndarray, train_log_risk: np.ndarray | None = None) -> nn.Module:
    """After training: DeepSurv's Breslow baseline hazard from its training log-risks.

    A no-op for the discrete models, whose curves come from their outputs alone. Save the
    state dict afterwards: the baseline is part of the checkpoint.
    """
    model = _survival_net(model)
    if isinstance(model, COX_MODELS):
        log_risk = (predict_outputs(model, x_train) if train_log_risk is None
                    else np.asarray(train_log_risk)).reshape(-1)
        base = BreslowBaseline().fit(log_risk, np.asarray(train_time), np.asarray(train_event))
        device = model.baseline_times.device
        model.baseline_times = torch.as_tensor(base.times_, dtype=torch.float32, device=device)
        model.baseline_cumhaz = torch.as_tensor(base.cumhaz_, dtype=torch.float32, device=device)
    return model


def _discrete_log_survival(model: nn.Module, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log S at the cuts (N, m), CIF per risk (N, K, m)) for a discrete model's raw outputs."""
    out = torch.as_tensor(np.asarray(outputs, dtype=np.float64))
    if isinstance(model, LogisticHazardNet):
        log_s = torch.cumsum(-nn.functional.softplus(out.reshape(len(out), -1)), dim=1)
        return log_s.numpy(), (1 - log_s.exp()).numpy()[:, None, :]
    n, m = len(out), model.n_intervals
    logits = torch.cat([out.reshape(n, -1), torch.zeros(n, 1, dtype=out.dtype)], dim=1)
    pmf = torch.softmax(logits, dim=1)[:, :-1].reshape(n, model.n_risks, m)
    cif = pmf.cumsum(dim=2)
    surv = (1 - cif.sum(dim=1)).clamp(min=0.0)
    return surv.log().numpy(), cif.numpy()


def _neg_expected_time(times: np.ndarray, survival: np.ndarray) -> np.ndarray:
    """Minus the restricted mean survival time up to the last grid time (higher = earlier)."""
    widths = np.diff(np.concatenate([[0.0], times]))
    before = np.concatenate([np.ones((len(survival), 1)), survival[:, :-1]], axis=1)
    return -(before * widths).sum(axis=1)


def risk_from_outputs(model: nn.Module, outputs: np.ndarray) -> np.ndarray:
    """Risk score (higher = earlier event) from raw outputs; needs no baseline (for monitors).

    DeepSurv: the log-risk. Discrete models: minus the expected time up to the last cut.
    """
    model = _survival_net(model)
    outputs = np.asarray(outputs, dtype=np.float64)
    if isinstance(model, COX_MODELS):
        return outputs.reshape(-1)
    log_s, _ = _discrete_log_survival(model, outputs)
    return _neg_expected_time(model.cuts.cpu().numpy().astype(np.float64), np.exp(log_s))


def curves_from_outputs(model: nn.Module, outputs: np.ndarray) -> SurvivalCurves:
    """(risk, times, survival) from raw outputs (e.g. TorchPredictor.predict_outputs)."""
    model = _survival_net(model)
    outputs = np.asarray(outputs, dtype=np.float64)
    if isinstance(model, COX_MODELS):
        if model.baseline_times.numel() == 0:
            raise ConfigError("DeepSurv has no baseline hazard yet: call fit_survival_baseline after "
                              "training")
        times = model.baseline_times.cpu().numpy().astype(np.float64)
        cumhaz = model.baseline_cumhaz.cpu().numpy().astype(np.float64)
        log_risk = outputs.reshape(-1)
        return log_risk, times, np.exp(-cumhaz[None, :] * np.exp(log_risk)[:, None])
    if not model.head_fitted:
        raise ConfigError(f"{model.survival_name} has no cut points: call fit_survival_head first")
    cuts = model.cuts.cpu().numpy().astype(np.float64)
    log_s, _ = _discrete_log_survival(model, outputs)
    risk = _neg_expected_time(cuts, np.clip(np.exp(log_s), 0.0, 1.0))
    if isinstance(model, LogisticHazardNet):   # constant hazard: log S is linear between cuts
        survival = np.exp(_between_cuts(log_s, 0.0, model.interpolate))
    else:                                      # constant density: S is linear between cuts
        survival = _between_cuts(np.exp(log_s), 1.0, model.interpolate)
    return risk, _fine_grid(cuts, model.interpolate), np.clip(survival, 0.0, 1.0)


def _fine_grid(cuts: np.ndarray, sub: int) -> np.ndarray:
    """`sub` evenly spaced times in each interval (start, cut], ending on the cut; starts at 0."""
    starts = np.concatenate([[0.0], cuts[:-1]])
    frac = np.arange(1, sub + 1) / sub
    return (starts[:, None] + (cuts - starts)[:, None] * frac[None, :]).reshape(-1)


def _between_cuts(at_cuts: np.ndarray, at_zero: float, sub: int) -> np.ndarray:
    """Values (..., m) at the cuts, linearly interpolated onto `_fine_grid` (value at 0 given)."""
    prev = np.concatenate([np.full(at_cuts.shape[:-1] + (1,), at_zero), at_cuts[..., :-1]], axis=-1)
    frac = np.tile(np.arange(1, sub + 1) / sub, at_cuts.shape[-1])
    j = np.repeat(np.arange(at_cuts.shape[-1]), sub)
    return prev[..., j] * (1 - frac) + at_cuts[..., j] * frac


def curve_times(model: nn.Module) -> np.ndarray:
    """The time grid a fitted survival network's curves are given on."""
    model = _survival_net(model)
    if isinstance(model, COX_MODELS):
        return model.baseline_times.cpu().numpy().astype(np.float64)
    return _fine_grid(model.cuts.cpu().numpy().astype(np.float64), model.interpolate)


def curves_on_grid(times: np.ndarray, survival: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Survival curves (N, T) on `times` read as steps at the times of `grid` (1 before the first)."""
    k = np.searchsorted(times, grid, side="right") - 1
    return np.where(k[None, :] >= 0, survival[:, np.maximum(k, 0)], 1.0)


def survival_curves(model: nn.Module, x: Any) -> SurvivalCurves:
    """(risk (N,), times (T,), survival (N, T)) for feature rows x."""
    return curves_from_outputs(model, predict_outputs(model, x))


def cumulative_incidence(model: nn.Module, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """DeepHit's cause-specific cumulative incidence: (times (T,), cif (N, n_risks, T)).

    S(t) from `survival_curves` equals 1 - cif.sum(axis=1).
    """
    model = _survival_net(model)
    if not isinstance(model, DeepHitNet):
        raise ConfigError("cumulative incidence per cause needs a DeepHit model")
    if not model.head_fitted:
        raise ConfigError("deephit has no cut points: call fit_survival_head first")
    _, cif = _discrete_log_survival(model, predict_outputs(model, x))
    return curve_times(model), np.clip(_between_cuts(cif, 0.0, model.interpolate), 0.0, 1.0)


def concordance_monitor(model: nn.Module) -> Callable[[np.ndarray, np.ndarray], float]:
    """A Trainer monitor (mode "max"): Harrell's C of the validation outputs' risk scores."""
    from sksurv.metrics import concordance_index_censored

    def monitor(outputs: np.ndarray, targets: np.ndarray) -> float:
        time, event = as_time_event(targets)
        if not np.any(event > 0):
            return float("nan")
        risk = risk_from_outputs(model, outputs)
        return float(concordance_index_censored(event > 0, time, risk)[0])

    return monitor


# -- dataset ----------------------------------------------------------------------------------
def survival_dataset(inputs: np.ndarray, targets: Any, kind: TargetKind, train: bool = False,
                     params: dict[str, Any] | None = None) -> TensorDataset:
    """(features float32, target float32 (2,) = [time, event]); 1-D dummy targets become (N, 2)."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    y = np.asarray(targets)
    if y.dtype.names is None and y.ndim == 1:   # prediction passes placeholder targets
        y = np.column_stack([y, np.zeros_like(y)])
    time, event = as_time_event(y)
    return TensorDataset(x, torch.as_tensor(np.column_stack([time, event]), dtype=torch.float32))


# -- classical baselines ----------------------------------------------------------------------
class SurvivalEstimator:
    """A scikit-survival pipeline whose `fit` also takes (N, 2) [time, event] float targets,
    which is what the rest of iatros hands to sklearn-family models."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def fit(self, x: Any, y: Any) -> SurvivalEstimator:
        self.pipeline.fit(x, to_structured(*as_time_event(y)))
        return self

    def predict(self, x: Any) -> np.ndarray:
        """Risk score (higher = earlier event)."""
        return self.pipeline.predict(x)

    def predict_survival_function(self, x: Any, return_array: bool = False) -> Any:
        return self.pipeline.predict_survival_function(x, return_array=return_array)


def _preprocessor(categorical: tuple[Any, ...] | list[Any]) -> Any:
    """Median imputation + scaling; most-frequent imputation + one-hot for `categorical` columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    if not categorical:
        return numeric
    onehot = make_pipeline(SimpleImputer(strategy="most_frequent"),
                           OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    return ColumnTransformer([("categorical", onehot, list(categorical))], remainder=numeric)


def build_coxph(kind: TargetKind, seed: int, alpha: float = 0.01, ties: str = "efron",
                categorical: tuple[Any, ...] | list[Any] = ()) -> Any:
    """Cox proportional hazards (scikit-survival) with a small ridge penalty `alpha`, after
    imputation, scaling and one-hot encoding of the `categorical` columns (indices or names)."""
    from sklearn.pipeline import make_pipeline
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    return SurvivalEstimator(make_pipeline(_preprocessor(categorical),
                                           CoxPHSurvivalAnalysis(alpha=alpha, ties=ties)))


def build_rsf(kind: TargetKind, seed: int, n_estimators: int = 200, min_samples_leaf: int = 15,
              max_features: str | float | None = "sqrt", n_jobs: int = 1,
              categorical: tuple[Any, ...] | list[Any] = ()) -> Any:
    """Random survival forest (scikit-survival), seeded, after imputation (and one-hot)."""
    from sklearn.pipeline import make_pipeline
    from sksurv.ensemble import RandomSurvivalForest

    forest = RandomSurvivalForest(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                  max_features=max_features, n_jobs=n_jobs, random_state=seed)
    return SurvivalEstimator(make_pipeline(_preprocessor(categorical), forest))


def baseline_survival_curves(estimator: Any, x: Any, times: np.ndarray | None = None) -> SurvivalCurves:
    """(risk, times, survival) for a fitted SurvivalEstimator, scikit-survival estimator or pipeline.

    Curves are read on the estimator's own grid of training times and carried as step functions
    to `times` (default: that grid); S = 1 before the first, last value after the last.
    """
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, SurvivalEstimator):
        estimator = estimator.pipeline
    if isinstance(estimator, Pipeline):
        final = estimator.steps[-1][1]
        xt = estimator[:-1].transform(x) if len(estimator.steps) > 1 else x
    else:
        final, xt = estimator, x
    risk = np.asarray(final.predict(xt), dtype=np.float64)
    grid = np.asarray(final.unique_times_, dtype=np.float64)
    surv = np.asarray(final.predict_survival_function(xt, return_array=True), dtype=np.float64)
    if times is None:
        times = grid
    times = np.asarray(times, dtype=np.float64)
    idx = np.searchsorted(grid, times, side="right")
    padded = np.concatenate([np.ones((len(surv), 1)), surv], axis=1)
    survival = np.minimum.accumulate(np.clip(padded[:, idx], 0.0, 1.0), axis=1)
    return risk, times, survival


# -- registration -----------------------------------------------------------------------------
_SURVIVAL_NET: dict[str, Any] = {"kinds": (TargetKind.SURVIVAL,), "prepare": fit_preprocessing}
_TRAIN_DEFAULTS = {"epochs": 200, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4, "patience": 20}

register_model(ModelSpec(
    name="deepsurv", family="torch", modalities=(Modality.TABULAR,), build=build_deepsurv,
    description="DeepSurv: MLP log-risk trained on the Cox partial likelihood (Efron ties), "
                "Breslow baseline hazard for curves",
    params={"hidden": (32, 32), "dropout": 0.1, "ties": "efron"},
    # lr 1e-2 over 1e-3: higher 5-fold CV C on all four DeepSurv training files (benchmarks/survival.py);
    # a 5-fold cross-fit ensemble over one network: higher nested-CV C on all four (README)
    train_defaults={**_TRAIN_DEFAULTS, "lr": 1e-2}, dataset=survival_dataset, n_inputs=tabular_width,
    ensemble=5, cross_fit=True, **_SURVIVAL_NET, survival="cox",
))
register_model(ModelSpec(
    name="logistic-hazard", family="torch", modalities=(Modality.TABULAR,), build=build_logistic_hazard,
    description="Discrete-time logistic hazard MLP over 20 intervals at event-time quantiles, curves "
                "interpolated at constant hazard within each interval",
    params={"hidden": (32, 32), "dropout": 0.1, "n_intervals": 20, "interpolate": 10},
    train_defaults=dict(_TRAIN_DEFAULTS), dataset=survival_dataset, n_inputs=tabular_width,
    **_SURVIVAL_NET, survival="discrete",
))
register_model(ModelSpec(
    name="deephit", family="torch", modalities=(Modality.TABULAR,), build=build_deephit,
    description="DeepHit: MLP probability mass over 20 intervals (curves interpolated at constant "
                "density), likelihood + ranking loss; competing risks with n_risks > 1",
    params={"hidden": (32, 32), "dropout": 0.1, "n_intervals": 20, "interpolate": 10, "n_risks": 1,
            "alpha": 0.2, "sigma": 0.1},
    train_defaults=dict(_TRAIN_DEFAULTS), dataset=survival_dataset, n_inputs=tabular_width,
    **_SURVIVAL_NET, survival="discrete",
))
register_model(ModelSpec(
    name="coxph", family="sklearn", modalities=(Modality.TABULAR, Modality.EHR), build=build_coxph,
    description="Cox proportional hazards (scikit-survival, ridge alpha 0.01) after imputation and "
                "scaling",
    params={"alpha": 0.01}, kinds=(TargetKind.SURVIVAL,),
))
register_model(ModelSpec(
    name="rsf", family="sklearn", modalities=(Modality.TABULAR, Modality.EHR), build=build_rsf,
    description="Random survival forest (scikit-survival, 200 trees, min_samples_leaf 15)",
    params={"n_estimators": 200, "min_samples_leaf": 15}, kinds=(TargetKind.SURVIVAL,),
))
