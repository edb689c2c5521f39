"""Survival losses: Cox partial likelihood (DeepSurv), logistic-hazard NLL, DeepHit.

The functional forms take (outputs, time, event, ...); the nn.Module forms take the Trainer's
(outputs, target) with target (B, 2) = [time, event], so survival models train in the one loop.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from iatros.errors import ConfigError
from iatros.models.survival import COX_MODELS, DeepHitNet, LogisticHazardNet, discretize


def _float(x: torch.Tensor) -> torch.Tensor:
    """float32 unless already float64 (autocast may hand over half precision)."""
    return x if x.dtype == torch.float64 else x.float()


def cox_ph_loss(log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                ties: str = "efron") -> torch.Tensor:
    """Negative Cox partial log-likelihood of a mini-batch, averaged over its events.

    Rows are sorted by time and risk sets summed with a reverse log-cumsum-exp; tied times share
    one risk set, and `ties="efron"` (default) or `"breslow"` handles tied events. A batch without
    events gives 0 while keeping the graph, so the Trainer's backward still works.
    """
    if ties not in ("efron", "breslow"):
        raise ConfigError(f"ties must be 'efron' or 'breslow', not {ties!r}")
    eta = _float(log_risk.reshape(-1))
    time = time.reshape(-1)
    event = (event.reshape(-1) > 0).to(eta.dtype)
    if not bool(event.any()):
        return log_risk.sum() * 0.0
    order = torch.argsort(time, stable=True)
    t, e, x = time[order], event[order], eta[order]
    _, group, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    # log of the sum of exp(eta) over the risk set {j: t_j >= t_i}, shared by tied times
    log_risk_set = torch.logcumsumexp(x.flip(0), 0).flip(0)[starts][group]
    ll = x - log_risk_set
    if ties == "efron":
        n_groups = counts.numel()
        deaths = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add(0, group, e)
        shift = torch.full((n_groups,), -torch.inf, dtype=x.dtype, device=x.device).scatter_reduce(
            0, group, x.detach(), reduce="amax")
        sum_dead = torch.zeros_like(deaths).index_add(0, group, e * torch.exp(x - shift[group]))
        log_dead = shift + torch.log(torch.where(deaths > 0, sum_dead, torch.ones_like(sum_dead)))
        before = torch.cumsum(e, 0) - e                      # events earlier in sorted order
        rank = before - before[starts][group]                # tied events before this one: l
        frac = torch.where(e > 0, rank / deaths[group].clamp(min=1), torch.zeros_like(rank))
        ll = ll - torch.log1p(-frac * torch.exp(log_dead[group] - log_risk_set))
    return -(ll * e).sum() / e.sum()


def logistic_hazard_loss(logits: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                         cuts: torch.Tensor) -> torch.Tensor:
    """NLL of the discrete hazard (pycox `nll_logistic_hazard`), mean over rows.

    An event in interval j contributes -log h_j - sum_{k<j} log(1 - h_k); a row that survived
    intervals 0..j contributes -sum_{k<=j} log(1 - h_k).
    """
    logits = _float(logits).reshape(len(logits), -1)
    idx, code = discretize(time.reshape(-1), event.reshape(-1), cuts)
    safe = idx.clamp(min=0).unsqueeze(1)
    target = torch.zeros_like(logits).scatter(1, safe, (code > 0).to(logits.dtype).unsqueeze(1))
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").cumsum(1)
    return (bce.gather(1, safe).squeeze(1) * (idx >= 0).to(logits.dtype)).mean()


def _deephit_log_pmf(logits: torch.Tensor, n_risks: int, n_intervals: int,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pmf (B, K, m), log mass beyond the last cut (B,)): softmax with a fixed 0 logit."""
    b = len(logits)
    flat = torch.cat([logits.reshape(b, -1), logits.new_zeros(b, 1)], dim=1)
    logp = torch.log_softmax(flat, dim=1)
    return logp[:, :-1].reshape(b, n_risks, n_intervals), logp[:, -1]


def deephit_nll(logp: torch.Tensor, log_tail: torch.Tensor, idx: torch.Tensor,
                code: torch.Tensor) -> torch.Tensor:
    """-log pmf(cause, interval) for events, -log S(after interval idx) for censored rows."""
    b, k, m = logp.shape
    rows = torch.arange(b, device=logp.device)
    safe = idx.clamp(min=0)
    log_event = logp[rows, (code - 1).clamp(min=0, max=k - 1), safe]
    after = torch.logcumsumexp(logp.flip(-1), -1).flip(-1)   # log sum over intervals >= j
    after = torch.cat([after[..., 1:], torch.full_like(after[..., :1], -torch.inf)], dim=-1)
    log_surv = torch.logsumexp(torch.cat([after[rows, :, safe], log_tail.unsqueeze(1)], dim=1), dim=1)
    log_surv = torch.where(idx >= 0, log_surv, torch.zeros_like(log_surv))
    return -torch.where(code > 0, log_event, log_surv).mean()


def deephit_rank_loss(logp: torch.Tensor, idx: torch.Tensor, code: torch.Tensor,
                      sigma: float) -> torch.Tensor:
    """DeepHit ranking loss (pycox `rank_loss_deephit_single` / `_cr`), mean over all pairs.

    For a pair (i, j) where i has an event of cause k before j's time (or at the same interval
    with j censored), penalise exp(-(F_k(T_i | x_i) - F_k(T_i | x_j)) / sigma).
    """
    b, k, _ = logp.shape
    cdf = logp.exp().cumsum(-1)
    cause = (code - 1).clamp(min=0, max=k - 1)
    safe = idx.clamp(min=0)
    at_ti = cdf[:, cause, safe]                     # [j, i] = F_{k_i}(T_i | x_j)
    diff = at_ti.diagonal().unsqueeze(0) - at_ti    # [j, i] = F_i(T_i) - F_j(T_i)
    comparable = (code.unsqueeze(1) > 0) & (
        (idx.unsqueeze(1) < idx.unsqueeze(0))
        | ((idx.unsqueeze(1) == idx.unsqueeze(0)) & (code.unsqueeze(0) == 0)))   # [i, j]
    return (comparable.to(cdf.dtype) * torch.exp(-diff.T / sigma)).mean()


def deephit_loss(logits: torch.Tensor, time: torch.Tensor, event: torch.Tensor, cuts: torch.Tensor,
                 alpha: float = 0.2, sigma: float = 0.1, n_risks: int = 1) -> torch.Tensor:
    """alpha * NLL + (1 - alpha) * ranking loss (pycox DeepHitSingleLoss / DeepHitLoss).

    `logits` (B, n_risks * m) or (B, n_risks, m); event codes 1..n_risks (single risk: any > 0).
    """
    logits = _float(logits)
    idx, code = discretize(time.reshape(-1), event.reshape(-1), cuts)
    if n_risks == 1:
        code = (code > 0).long()
    logp, log_tail = _deephit_log_pmf(logits, n_risks, cuts.numel())
    nll = deephit_nll(logp, log_tail, idx, code)
    if alpha >= 1:
        return nll
    return alpha * nll + (1 - alpha) * deephit_rank_loss(logp, idx, code, sigma)


# -- Trainer-facing modules -------------------------------------------------------------------
class CoxPHLoss(nn.Module):
    """cox_ph_loss on (outputs (B, 1), target (B, 2))."""

    def __init__(self, ties: str = "efron") -> None:
        super().__init__()
        if ties not in ("efron", "breslow"):
            raise ConfigError(f"ties must be 'efron' or 'breslow', not {ties!r}")
        self.ties = ties

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cox_ph_loss(outputs, target[:, 0], target[:, 1], self.ties)


class LogisticHazardLoss(nn.Module):
    """logistic_hazard_loss on (outputs (B, m), target (B, 2)); keeps its copy of the cuts."""

    def __init__(self, cuts: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("cuts", torch.as_tensor(cuts, dtype=torch.float32).clone())

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return logistic_hazard_loss(outputs, target[:, 0], target[:, 1], self.cuts)


class DeepHitLoss(nn.Module):
    """deephit_loss on (outputs (B, K * m), target (B, 2)); keeps its copy of the cuts."""

    def __init__(self, cuts: torch.Tensor, alpha: float = 0.2, sigma: float = 0.1,
                 n_risks: int = 1) -> None:
        super().__init__()
        self.register_buffer("cuts", torch.as_tensor(cuts, dtype=torch.float32).clone())
        self.alpha, self.sigma, self.n_risks = alpha, sigma, n_risks

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return deephit_loss(outputs, target[:, 0], target[:, 1], self.cuts, self.alpha, self.sigma,
                            self.n_risks)


_LOSSES: dict[str, type[nn.Module]] = {
    "deepsurv": CoxPHLoss, "logistic-hazard": LogisticHazardLoss, "deephit": DeepHitLoss,
}


def survival_loss_for(model: str | nn.Module, **params: Any) -> nn.Module:
    """The training loss of a survival model, for the Trainer's (outputs, target (B, 2)).

    Given the network, call it after `fit_survival_head`: the loss copies the cut points and the
    model's loss settings (ties, alpha, sigma, n_risks). Given a model name, pass them (and
    `cuts` for the discrete models). Keys the loss does not take (hidden, dropout, ...) are
    ignored, so a model's whole params dict can be passed.
    """
    if isinstance(model, nn.Module):
        if not isinstance(model, (*COX_MODELS, LogisticHazardNet, DeepHitNet)):
            raise ConfigError(f"{type(model).__name__} is not a survival network")
        name = model.survival_name
        settings: dict[str, Any] = dict(model.loss_params())
        if not isinstance(model, COX_MODELS):
            if not model.head_fitted:
                raise ConfigError(f"{name}: call fit_survival_head before building its loss")
            settings["cuts"] = model.cuts.detach().cpu()
        settings.update(params)
    else:
        name, settings = model, dict(params)
    if name not in _LOSSES:
        raise ConfigError(f"no survival loss for model {name!r}; known: {', '.join(sorted(_LOSSES))}")
    cls = _LOSSES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    if "cuts" in accepted and settings.get("cuts") is None:
        raise ConfigError(f"the {name} loss needs the cut points (cuts=...)")
    return cls(**{k: v for k, v in settings.items() if k in accepted})
