"""Conventions of targets with structure, shared by every layer: BIO tag ids of tokens targets
(entity spans, the entity vote of several taggers) and (time, event) pairs of survival targets
(the one validity check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError


def bio_spans(tags: Any) -> set[tuple[int, int, int]]:
    """Entities (start, end exclusive, type) in one row of BIO tag ids.

    Convention for every tokens task: 0 is O, 2k+1 is B of entity type k, 2k+2 is I of type k,
    -1 is padding. An I that does not continue an entity of its type starts one (conlleval).
    """
    spans: set[tuple[int, int, int]] = set()
    start, kind = -1, -1
    row = [int(t) for t in tags]
    for i, t in enumerate([*row, 0]):
        inside = t > 0 and t % 2 == 0 and (t - 2) // 2 == kind and start >= 0
        if start >= 0 and not inside:
            spans.add((start, i, kind))
            start, kind = -1, -1
        if t > 0 and not inside:
            start, kind = i, (t - 1) // 2
    return spans


def majority_spans(members: list[np.ndarray]) -> np.ndarray:
    """Entity-level vote of several taggers' tag ids ((N, L), -1 on padding): an entity (span and
    type) is kept when more than half the members predict it, or exactly half including the first
    member. Kept entities never overlap (a member's own entities are disjoint), so they are
    written back as B/I tags; two members give the first one's entities."""
    stacked = np.stack([np.asarray(m) for m in members])  # (M, N, L)
    n_members = len(stacked)
    out = np.where(stacked[0] < 0, stacked[0], 0).astype(stacked.dtype)
    for i in range(stacked.shape[1]):
        votes: dict[tuple[int, int, int], int] = {}
        for k in range(n_members):
            for span in bio_spans(stacked[k, i][stacked[k, i] >= 0]):
                votes[span] = votes.get(span, 0) + 2 + (k == 0)  # the first member breaks ties
        for (start, end, kind), score in votes.items():
            if score > n_members:
                out[i, start] = 2 * kind + 1
                out[i, start + 1:end] = 2 * kind + 2
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so messages show 2, not np.int64(2))."""
    return value.item() if isinstance(value, np.generic) else value


def _rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return f"rows {shown}{', ...' if len(rows) > limit else ''}"


def survival_pairs(time: Any, event: Any, name: str = "survival", *, require_event: bool = True,
                   allow_zero_time: bool = False, where: Callable[[np.ndarray], str] = _rows,
                   error: type[Exception] = ConfigError) -> tuple[np.ndarray, np.ndarray]:
    """The one check of a survival target: (time as float, event as bool).

    Times must be present, finite and > 0 (>= 0 with `allow_zero_time`); events 0/1 or
    booleans; at least one event unless `require_event` is off. Errors (`error`) name `name` and
    up to five offending rows, formatted by `where` (e.g. as a file's line numbers)."""
    t_raw, e_raw = np.asarray(time), np.asarray(event)
    if t_raw.ndim != 1 or e_raw.ndim != 1:
        raise error(f"{name} time and event must be 1-D, got shapes {t_raw.shape} and "
                    f"{e_raw.shape}")
    if len(t_raw) != len(e_raw):
        raise error(f"{name} time has {len(t_raw)} rows but {name} event has {len(e_raw)}")
    if len(t_raw) == 0:
        raise error(f"{name} has no rows: nothing to evaluate")
    t = pd.to_numeric(pd.Series(t_raw, dtype=object), errors="coerce").to_numpy(dtype=float)
    for bad, what in ((np.isnan(t), "is missing (NaN) or not a number"),
                      (np.isinf(t), "is infinite")):
        rows = np.flatnonzero(bad)
        if len(rows):
            raise error(f"{name} time {what} in {len(rows)} rows ({where(rows)}): every row "
                        f"needs a follow-up time")
    rows = np.flatnonzero(t < 0 if allow_zero_time else t <= 0)
    if len(rows):
        bound = ">= 0" if allow_zero_time else "> 0"
        raise error(f"{name} time must be {bound}; {len(rows)} rows are not ({where(rows)}, e.g. "
                    f"{t[rows[0]]:g})")
    if e_raw.dtype == bool:
        e = e_raw.copy()
    else:
        e_num = pd.to_numeric(pd.Series(e_raw, dtype=object), errors="coerce").to_numpy(float)
        rows = np.flatnonzero(~np.isin(e_num, (0.0, 1.0)))
        if len(rows):
            raise error(f"{name} event must be 0/1 or True/False; {len(rows)} rows are not "
                        f"({where(rows)}, e.g. {_plain(e_raw[rows[0]])!r})")
        e = e_num == 1.0
    if require_event and not e.any():
        raise error(f"{name} event has no events: all {len(e)} rows are censored, so there is "
                    f"nothing to learn or score")
    return t, e
