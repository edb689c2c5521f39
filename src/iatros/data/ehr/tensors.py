"""From the event format to model inputs: hourly grids, event sequences, aggregated features.

`EhrInputs` holds, for N stays, what every EHR model reads:
* `values` (N, T, V): the mean of each numeric variable in each time bin, NaN where unobserved
  (GRU-D reads this grid with its mask and time gaps);
* `ev_var`, `ev_time`, `ev_value` (N, L): the last L time-stamped events (numeric variables and
  codes) for the event Transformer, padded with variable 0;
* `static` (N, S): age, sex, source descriptors and log counts of codes in the window.
Classical baselines read `np.asarray(inputs)`: per-variable first/last/min/max/mean/std/count,
hours since the last value, means over the first and last quarter and half of the window and the
extremes of its second half (trends a single summary hides), plus the static features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from iatros.errors import CorruptDataError

STATS = ("first", "last", "min", "max", "mean", "std", "count", "since_last", "early_mean",
         "first_half_mean", "second_half_mean", "late_mean", "second_half_min", "second_half_max")


@dataclass
class EhrInputs:
    """Model inputs for N stays (see module docstring); rows index like an array."""

    values: np.ndarray
    static: np.ndarray
    ev_var: np.ndarray
    ev_time: np.ndarray
    ev_value: np.ndarray
    variables: list[str]
    static_names: list[str]
    codes: list[str]
    bin_hours: float

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: Any) -> EhrInputs:
        rows = np.atleast_1d(np.asarray(rows)) if not isinstance(rows, slice) else rows
        return replace(self, values=self.values[rows], static=self.static[rows],
                       ev_var=self.ev_var[rows], ev_time=self.ev_time[rows],
                       ev_value=self.ev_value[rows])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The aggregated-feature view that classical baselines read."""
        out = self.aggregated()
        return out if dtype is None else out.astype(dtype)

    def present(self, row: int) -> list[str]:
        """The variables and codes a stay has in its window (what a stay's risk can rest on)."""
        observed = ~np.isnan(self.values[row]).all(axis=0)
        ids = set(np.unique(self.ev_var[row]).tolist()) - {0}
        vocab = self.event_vocab
        return ([v for j, v in enumerate(self.variables) if observed[j]]
                + [vocab[i] for i in sorted(ids) if i > len(self.variables)])

    def without(self, name: str) -> EhrInputs:
        """A copy with one variable or code removed, as if never recorded."""
        values, static = self.values.copy(), self.static.copy()
        ev_var, ev_value = self.ev_var.copy(), self.ev_value.copy()
        if name in self.variables:
            values[:, :, self.variables.index(name)] = np.nan
        if f"count:{name}" in self.static_names:
            static[:, self.static_names.index(f"count:{name}")] = 0.0
        if name in self.event_vocab:
            gone = ev_var == self.event_vocab.index(name)
            ev_var[gone], ev_value[gone] = 0, np.nan
        return replace(self, values=values, static=static, ev_var=ev_var, ev_value=ev_value)

    @staticmethod
    def stack(parts: list[EhrInputs]) -> EhrInputs:
        """Rows of several inputs with the same vocabulary, one after another."""
        first = parts[0]
        return replace(first, **{k: np.concatenate([getattr(p, k) for p in parts])
                                 for k in ("values", "static", "ev_var", "ev_time", "ev_value")})

    @property
    def event_vocab(self) -> list[str]:
        """Event ids: 0 is padding, then the numeric variables, then the codes."""
        return ["<pad>", *self.variables, *self.codes]

    @property
    def feature_names(self) -> list[str]:
        return [f"{v}:{s}" for v in self.variables for s in STATS] + list(self.static_names)

    def aggregated(self) -> np.ndarray:
        """Per-variable summaries over the window, then the static features."""
        n, t, v = self.values.shape
        observed = ~np.isnan(self.values)
        count = observed.sum(axis=1).astype(np.float32)
        has = count > 0
        idx = np.arange(t)[None, :, None]
        first_i = np.where(observed, idx, t).min(axis=1)
        last_i = np.where(observed, idx, -1).max(axis=1)
        take = np.take_along_axis
        x = self.values
        half, quarter = x[:, t // 2:], t - max(1, t // 4)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as meant
            first = np.where(has, take(x, np.clip(first_i, 0, t - 1)[:, None], 1)[:, 0], np.nan)
            last = np.where(has, take(x, np.clip(last_i, 0, t - 1)[:, None], 1)[:, 0], np.nan)
            stats = [first, last, np.nanmin(x, axis=1), np.nanmax(x, axis=1),
                     np.nanmean(x, axis=1), np.nanstd(x, axis=1), count,
                     np.where(has, (t - 1 - last_i) * self.bin_hours, np.nan),
                     np.nanmean(x[:, :max(1, t // 4)], axis=1), np.nanmean(x[:, :max(1, t // 2)], axis=1),
                     np.nanmean(half, axis=1), np.nanmean(x[:, quarter:], axis=1),
                     np.nanmin(half, axis=1), np.nanmax(half, axis=1)]
        per_var = np.stack(stats, axis=2).reshape(n, v * len(STATS))
        return np.concatenate([per_var, self.static], axis=1).astype(np.float32)

    def align(self, feature_names: list[str]) -> EhrInputs:
        """Reorder to a trained model's variables, codes and static features (absent: missing)."""
        variables, codes, static_names = vocabulary_of(feature_names)
        vi = {v: i for i, v in enumerate(self.variables)}
        si = {s: i for i, s in enumerate(self.static_names)}
        values = np.full((*self.values.shape[:2], len(variables)), np.nan, np.float32)
        for j, v in enumerate(variables):
            if v in vi:
                values[:, :, j] = self.values[:, :, vi[v]]
        static = np.full((len(self), len(static_names)), np.nan, np.float32)
        for j, s in enumerate(static_names):
            if s in si:
                static[:, j] = self.static[:, si[s]]
            elif s.startswith("count:"):
                static[:, j] = 0.0
        new_vocab = {e: i for i, e in enumerate(["<pad>", *variables, *codes])}
        remap = np.array([new_vocab.get(e, 0) for e in self.event_vocab], dtype=np.int64)
        ev_var = remap[self.ev_var]
        keep = ev_var > 0
        return EhrInputs(values, static, ev_var, np.where(keep, self.ev_time, 0).astype(np.float32),
                         np.where(keep, self.ev_value, np.nan).astype(np.float32), variables,
                         static_names, codes, self.bin_hours)


def vocabulary_of(feature_names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(numeric variables, codes, static names) behind a trained model's feature names."""
    variables = list(dict.fromkeys(f.rsplit(":", 1)[0] for f in feature_names
                                   if f.rsplit(":", 1)[-1] in STATS and ":" in f))
    static_names = [f for f in feature_names if f not in
                    {f"{v}:{s}" for v in variables for s in STATS}]
    codes = [s[len("count:"):] for s in static_names if s.startswith("count:")]
    return variables, codes, static_names


def choose_vocabulary(events: pl.DataFrame, n_stays: int, *, max_variables: int = 64,
                      max_codes: int = 128, min_coverage: float = 0.02) -> tuple[list[str], list[str]]:
    """Numeric variables and codes seen in at least `min_coverage` of stays, most common first."""
    coverage = (events.group_by("code").agg(
        pl.col("stay_id").n_unique().alias("stays"),
        pl.col("numeric_value").is_not_null().mean().alias("numeric"))
        .filter(pl.col("stays") >= max(1, min_coverage * n_stays))
        .sort(["stays", "code"], descending=[True, False]))
    numeric = coverage.filter(pl.col("numeric") >= 0.5)["code"].head(max_variables).to_list()
    codes = coverage.filter(pl.col("numeric") < 0.5)["code"].head(max_codes).to_list()
    return numeric, codes


def window_events(events: pl.DataFrame, stays: pl.DataFrame, *, hours: float | None,
                  anchor: str = "start") -> pl.DataFrame:
    """Events of each stay inside its observation window, with `idx` (stay row) and `hours`.

    `anchor="start"`: [start, start + hours); `"end"`: the stay up to its end (the last `hours`
    form the grid). Nothing after the window reaches the model.
    """
    frame = stays.select("stay_id", "start_time", "end_time").with_row_index("idx")
    if anchor == "start":
        if hours is None:
            raise CorruptDataError("a start-anchored window needs its length in hours")
        frame = frame.with_columns(
            (pl.col("start_time") + timedelta(hours=hours)).alias("_until"),
            pl.col("start_time").alias("_t0"))
        inside = (pl.col("time") >= pl.col("start_time")) & (pl.col("time") < pl.col("_until"))
    else:
        frame = frame.with_columns(pl.col("end_time").alias("_until"),
                                   (pl.col("end_time") - timedelta(hours=hours or 48)).alias("_t0"))
        inside = (pl.col("time") >= pl.col("start_time")) & (pl.col("time") <= pl.col("_until"))
    joined = events.join(frame, on="stay_id", how="inner").filter(inside)
    return joined.with_columns(
        ((pl.col("time") - pl.col("_t0")).dt.total_seconds() / 3600).alias("hours")
    ).select("idx", "hours", "code", "numeric_value")


def build_inputs(events: pl.DataFrame, stays: pl.DataFrame, *, variables: list[str],
                 codes: list[str], static: np.ndarray, static_names: list[str], hours: float,
                 anchor: str = "start", bin_hours: float = 1.0, max_events: int = 800,
                 ) -> EhrInputs:
    """EhrInputs for `stays` (in row order) from their events in the window."""
    n, n_bins, n_vars = stays.height, int(np.ceil(hours / bin_hours)), len(variables)
    ev = window_events(events, stays, hours=hours, anchor=anchor)
    vocab = pl.DataFrame({"code": ["<pad>", *variables, *codes]}).with_row_index("vid")
    var_ids = vocab.filter((pl.col("vid") >= 1) & (pl.col("vid") <= n_vars))
    numeric = (ev.filter(pl.col("numeric_value").is_not_null())
               .join(var_ids, on="code", how="inner")
               .filter((pl.col("hours") >= 0) & (pl.col("hours") < n_bins * bin_hours))
               .with_columns((pl.col("hours") / bin_hours).floor().cast(pl.Int64).alias("bin"))
               .group_by("idx", "bin", "vid").agg(pl.col("numeric_value").mean()))
    values = np.full((n, n_bins, n_vars), np.nan, np.float32)
    values[numeric["idx"].to_numpy(), numeric["bin"].to_numpy(),
           numeric["vid"].to_numpy() - 1] = numeric["numeric_value"].to_numpy()
    counts = np.zeros((n, len(codes)), np.float32)
    coded = (ev.join(vocab.filter(pl.col("vid") > n_vars), on="code", how="inner")
             .group_by("idx", "vid").len())
    counts[coded["idx"].to_numpy(), coded["vid"].to_numpy() - 1 - n_vars] = np.log1p(
        coded["len"].to_numpy())
    seq = (ev.join(vocab.filter(pl.col("vid") > 0), on="code", how="inner")
           .filter((pl.col("hours") >= 0) | pl.lit(anchor == "end"))
           .sort("idx", "hours", "vid")
           .with_columns(pl.int_range(pl.len()).reverse().over("idx").alias("_from_end"))
           .filter(pl.col("_from_end") < max_events)
           .with_columns(pl.int_range(pl.len()).over("idx").alias("pos")))
    ev_var = np.zeros((n, max_events), np.int64)
    ev_time = np.zeros((n, max_events), np.float32)
    ev_value = np.full((n, max_events), np.nan, np.float32)
    rows, pos = seq["idx"].to_numpy(), seq["pos"].to_numpy()
    ev_var[rows, pos] = seq["vid"].to_numpy()
    ev_time[rows, pos] = seq["hours"].to_numpy()
    ev_value[rows, pos] = seq["numeric_value"].fill_null(np.nan).to_numpy()
    all_static = np.concatenate([static.astype(np.float32), counts], axis=1)
    return EhrInputs(values, all_static, ev_var, ev_time, ev_value, list(variables),
                     [*static_names, *(f"count:{c}" for c in codes)], list(codes), bin_hours)
