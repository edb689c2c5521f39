"""Sequence models for irregular clinical time series: GRU-D and a Transformer over events.

Both keep their normalisation (per-variable mean and spread, static imputation) in buffers
learned from training stays only, so a checkpoint predicts on raw `EhrInputs`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from iatros.kinds import Modality, TargetKind
from iatros.models.registry import NETWORK_KINDS, ModelSpec, fit_preprocessing, register_model, target_tensor


class EhrDataset(Dataset):
    """Items `({"values", "static", "ev_var", "ev_time", "ev_value"}, target)` for one stay."""

    def __init__(self, inputs: Any, targets: np.ndarray, kind: TargetKind) -> None:
        self.x = {"values": torch.as_tensor(inputs.values), "static": torch.as_tensor(inputs.static),
                  "ev_var": torch.as_tensor(inputs.ev_var), "ev_time": torch.as_tensor(inputs.ev_time),
                  "ev_value": torch.as_tensor(inputs.ev_value)}
        self.y = target_tensor(targets, kind)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {k: v[i] for k, v in self.x.items()}, self.y[i]


def ehr_dataset(inputs: Any, targets: np.ndarray, kind: TargetKind, train: bool = False,
                params: dict[str, Any] | None = None) -> EhrDataset:
    return EhrDataset(inputs, targets, kind)


def ehr_width(inputs: Any, params: dict[str, Any] | None = None) -> int:
    """Number of numeric variables; the static width and vocabulary travel in params."""
    if params is not None:
        params.setdefault("n_static", int(inputs.static.shape[1]))
        params.setdefault("n_events", len(inputs.event_vocab))
        params.setdefault("bin_hours", float(inputs.bin_hours))
    return int(inputs.values.shape[2])


def _nan_stats(x: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(x, axis=axis), np.nanstd(x, axis=axis)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class StaticEncoder(nn.Module):
    """Imputed, standardised static features through one layer."""

    def __init__(self, n_static: int, width: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(n_static))
        self.register_buffer("scale", torch.ones(n_static))
        self.net = nn.Sequential(nn.Linear(n_static, width), nn.ReLU(), nn.Dropout(dropout))

    def fit(self, static: np.ndarray) -> None:
        mean, std = _nan_stats(static, (0,))
        self.center.copy_(torch.as_tensor(mean))
        self.scale.copy_(torch.as_tensor(std))

    def forward(self, static: torch.Tensor) -> torch.Tensor:
        z = torch.nan_to_num((static - self.center) / self.scale, nan=0.0)
        return self.net(z)

    def imputed(self, static: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(static with missing values set to the training mean, that mean as a baseline)."""
        center = self.center.expand_as(static)
        return torch.where(torch.isnan(static), center, static), center


def _static_attribution(encoder: StaticEncoder | None, static: torch.Tensor,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    if encoder is None:
        return torch.zeros_like(static), torch.zeros_like(static)
    return encoder.imputed(static)


class GRUD(nn.Module):
    """GRU-D (Che et al. 2018): inputs decay to the mean and the hidden state decays with time
    since each variable was last observed; the mask is an input too."""

    def __init__(self, n_inputs: int, n_outputs: int, n_static: int = 0, hidden: int = 64,
                 dropout: float = 0.3, bin_hours: float = 1.0, **_: Any) -> None:
        super().__init__()
        v = n_inputs
        self.bin_hours = bin_hours
        self.register_buffer("mean", torch.zeros(v))
        self.register_buffer("std", torch.ones(v))
        self.gamma_x = nn.Parameter(torch.full((v,), 0.1))
        self.gamma_x_bias = nn.Parameter(torch.zeros(v))
        self.gamma_h = nn.Linear(v, hidden)
        self.cell = nn.GRUCell(2 * v, hidden)
        self.static = StaticEncoder(max(n_static, 1), 32, dropout) if n_static else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + (32 if n_static else 0), n_outputs)

    def fit_preprocessing(self, inputs: Any) -> GRUD:
        mean, std = _nan_stats(inputs.values, (0, 1))
        self.mean.copy_(torch.as_tensor(mean))
        self.std.copy_(torch.as_tensor(std))
        if self.static is not None:
            self.static.fit(inputs.static)
        return self

    def standardise(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised values with 0 where missing, observation mask)."""
        mask = (~torch.isnan(values)).float()
        return torch.nan_to_num((values - self.mean) / self.std, nan=0.0), mask

    def encode(self, x: torch.Tensor, mask: torch.Tensor, static: torch.Tensor | None) -> torch.Tensor:
        b, t, v = x.shape
        h = x.new_zeros(b, self.cell.hidden_size)
        x_last = x.new_zeros(b, v)
        delta = x.new_zeros(b, v)
        for step in range(t):
            m = mask[:, step]
            gx = torch.exp(-torch.relu(self.gamma_x * delta + self.gamma_x_bias))
            x_hat = m * x[:, step] + (1 - m) * gx * x_last
            h = h * torch.exp(-torch.relu(self.gamma_h(delta)))
            h = self.cell(torch.cat([x_hat, m], dim=1), h)
            x_last = m * x[:, step] + (1 - m) * x_last
            delta = (1 - m) * delta + self.bin_hours
        out = self.drop(h)
        if self.static is not None and static is not None:
            out = torch.cat([out, self.static(static)], dim=1)
        return out

    def forward_standardised(self, x: torch.Tensor, mask: torch.Tensor,
                             static: torch.Tensor) -> torch.Tensor:
        """Logits from already standardised values (the path explanations differentiate)."""
        return self.head(self.encode(x, mask, static))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x, mask = self.standardise(batch["values"])
        return self.forward_standardised(x, mask, batch["static"])

    def attribution_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[tuple, tuple, tuple]:
        """(inputs, baselines, fixed args) for integrated gradients: standardised hourly values
        against the training mean (0), observed pattern held fixed; static against its mean."""
        x, mask = self.standardise(batch["values"])
        static, base = _static_attribution(self.static, batch["static"])
        return (x, static), (torch.zeros_like(x), base), (mask,)

    def forward_attribution(self, x: torch.Tensor, static: torch.Tensor,
                            mask: torch.Tensor) -> torch.Tensor:
        return self.forward_standardised(x, mask, static)


class EventTransformer(nn.Module):
    """A Transformer over time-stamped events: events charted at the same time form one token
    (mean of variable + value embeddings, plus a continuous-time encoding); a [CLS] token
    summarises the stay and joins the static features."""

    def __init__(self, n_inputs: int, n_outputs: int, n_static: int = 0, n_events: int = 2,
                 width: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.2,
                 **_: Any) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_events))
        self.register_buffer("std", torch.ones(n_events))
        self.embed = nn.Embedding(n_events + 1, width, padding_idx=0)  # last id = [CLS]
        self.value = nn.Linear(1, width)
        self.freq = nn.Parameter(torch.exp(torch.linspace(0, -math.log(1000.0), width // 2)),
                                 requires_grad=False)
        self.time = nn.Linear(width, width)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.static = StaticEncoder(max(n_static, 1), 32, dropout) if n_static else None
        self.head = nn.Linear(width + (32 if n_static else 0), n_outputs)
        self.cls_id = n_events

    def fit_preprocessing(self, inputs: Any) -> EventTransformer:
        n = self.mean.numel()
        ids, vals = inputs.ev_var.ravel(), inputs.ev_value.ravel()
        ok = (ids > 0) & np.isfinite(vals)
        mean, std = np.zeros(n, np.float32), np.ones(n, np.float32)
        for i in np.unique(ids[ok]):
            m, s = _nan_stats(vals[ok & (ids == i)], (0,))
            mean[i], std[i] = m, s
        self.mean.copy_(torch.as_tensor(mean))
        self.std.copy_(torch.as_tensor(std))
        if self.static is not None:
            self.static.fit(inputs.static)
        return self

    def standardise(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-variable standardised event values with 0 where none, 1.0 where a value exists)."""
        ids, val = batch["ev_var"], batch["ev_value"]
        has = ~torch.isnan(val)
        z = torch.where(has, (val - self.mean[ids]) / self.std[ids], torch.zeros_like(val))
        return z, has.to(val.dtype)

    def tokens(self, ids: torch.Tensor, t: torch.Tensor, z: torch.Tensor,
               has: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per charting time: the mean of its events' (variable + value) embeddings
        plus a continuous-time encoding; returns (tokens, padding mask)."""
        ev = self.embed(ids) + self.value(z.unsqueeze(-1)) * has.unsqueeze(-1)
        valid = ids > 0
        new_time = torch.ones_like(ids, dtype=torch.bool)
        new_time[:, 1:] = t[:, 1:] != t[:, :-1]
        slot = torch.cumsum(new_time & valid, dim=1) - 1
        n_slots = int(slot.max().clamp(min=0)) + 1
        slot = torch.where(valid, slot.clamp(min=0), torch.full_like(slot, n_slots))
        b, _, d = ev.shape
        summed = ev.new_zeros(b, n_slots + 1, d).scatter_add_(1, slot.unsqueeze(-1).expand(-1, -1, d),
                                                                 ev * valid.unsqueeze(-1))
        count = ev.new_zeros(b, n_slots + 1).scatter_add_(1, slot, valid.to(ev.dtype))
        when = ev.new_zeros(b, n_slots + 1).scatter_reduce_(1, slot, t, "amax", include_self=False)
        summed, count, when = summed[:, :n_slots], count[:, :n_slots], when[:, :n_slots]
        angles = when.unsqueeze(-1) * self.freq
        tok = summed / count.clamp(min=1).unsqueeze(-1) + self.time(
            torch.cat([angles.sin(), angles.cos()], dim=-1))
        return tok, count == 0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z, has = self.standardise(batch)
        return self.forward_attribution(z, batch["static"], batch["ev_var"], batch["ev_time"], has)

    def attribution_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[tuple, tuple, tuple]:
        """(inputs, baselines, fixed args) for integrated gradients: standardised event values
        against the training mean (0), which events happened and when held fixed."""
        z, has = self.standardise(batch)
        static, base = _static_attribution(self.static, batch["static"])
        return (z, static), (torch.zeros_like(z), base), (batch["ev_var"], batch["ev_time"], has)

    def forward_attribution(self, z: torch.Tensor, static: torch.Tensor, ids: torch.Tensor,
                            t: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        tok, pad = self.tokens(ids, t, z, has)
        cls = self.embed(torch.full_like(pad[:, :1], self.cls_id, dtype=torch.long))
        tokens = torch.cat([cls, tok], dim=1)
        pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        out = self.encoder(tokens, src_key_padding_mask=pad)[:, 0]
        if self.static is not None:
            out = torch.cat([out, self.static(static)], dim=1)
        return self.head(out)


def build_grud(n_inputs: int, n_outputs: int, **params: Any) -> GRUD:
    return GRUD(n_inputs, n_outputs, **params)


def build_event_transformer(n_inputs: int, n_outputs: int, **params: Any) -> EventTransformer:
    return EventTransformer(n_inputs, n_outputs, **params)


register_model(ModelSpec(
    name="grud", family="torch", modalities=(Modality.EHR,), build=build_grud,
    description="GRU-D: GRU with trainable decay of inputs and hidden state over missing values "
                "(hourly grid), plus static features",
    params={"hidden": 64, "dropout": 0.3},
    train_defaults={"epochs": 40, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-3,
                    "patience": 8},
    dataset=ehr_dataset, n_inputs=ehr_width, kinds=NETWORK_KINDS, prepare=fit_preprocessing,
))
register_model(ModelSpec(
    name="event-transformer", family="torch", modalities=(Modality.EHR,),
    build=build_event_transformer,
    description="Transformer over the last 800 time-stamped events (one token per charting "
                "time: variable + value embeddings, continuous-time encoding), [CLS] summary, "
                "plus static features",
    params={"width": 64, "heads": 4, "layers": 2, "dropout": 0.2},
    train_defaults={"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-2,
                    "patience": 8},
    dataset=ehr_dataset, n_inputs=ehr_width, kinds=NETWORK_KINDS, prepare=fit_preprocessing,
))
