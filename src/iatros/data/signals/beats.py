"""Heartbeats of an annotated ECG as rows: AAMI class, RR-interval features and the beat's samples.

The AAMI EC57 grouping of MIT-BIH beat labels (N, S, V, F, Q) and the RR features follow de Chazal
et al. (2004, IEEE TBME 51:1196) and the normalised RR of Lin & Yang (2014): pre- and post-RR, the
mean RR of the 10 beats around, the mean RR within 5 minutes, and the ratios between them. Beat
positions are the reference annotations (as in that protocol; a new recording's come from the
detector that scored best on MIT-BIH in benchmarks/signals.py, see `recording_beats`); samples
are the cleaned lead (0.5 Hz high-pass and powerline filter from neurokit2) from 0.25 s before to
0.4 s after the R-peak, divided by the record's robust spread so that gains differing between
recorders do not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iatros.data.signals.record import Annotation, Signal
from iatros.errors import CorruptDataError

BEATS_FS = 360.0  # the MIT-BIH rate: beat rows are cut at it
BEAT_LEAD = "MLII"
BEAT_DETECTOR = "searchback"  # the best pooled Se and +P on MIT-BIH in benchmarks/signals.py
AAMI_CLASSES = ("N", "S", "V", "F", "Q")
AAMI_GROUPS = {  # MIT-BIH beat symbol -> AAMI class; every other symbol is not a beat
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    "A": "S", "a": "S", "J": "S", "S": "S",
    "V": "V", "E": "V",
    "F": "F",
    "/": "Q", "f": "Q", "Q": "Q",
}
RR_FEATURES = ("rr_pre_s", "rr_post_s", "rr_local_s", "rr_average_s", "rr_pre_local",
               "rr_post_local", "rr_pre_average", "rr_post_pre")
BEFORE_S, AFTER_S = 0.25, 0.40
LOCAL_BEATS = 10
AVERAGE_S = 150.0  # half of de Chazal's 5-minute window


@dataclass
class Beats:
    """The labelled beats of one record: R-peak samples and AAMI class indices."""

    samples: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.samples)


def aami_beats(annotations: Sequence[Annotation]) -> Beats:
    """Beat annotations mapped to AAMI classes (indices into `AAMI_CLASSES`), in sample order;
    rhythm changes, comments and other non-beat marks are left out."""
    rows = sorted((a.sample, AAMI_CLASSES.index(AAMI_GROUPS[a.symbol])) for a in annotations
                  if a.symbol in AAMI_GROUPS)
    samples = np.array([s for s, _ in rows], dtype=np.int64)
    labels = np.array([c for _, c in rows], dtype=np.int64)
    return Beats(samples, labels)


def rr_features(samples: np.ndarray, fs: float) -> np.ndarray:
    """(n_beats, len(RR_FEATURES)) from R-peak positions; a first or last beat borrows its
    one neighbouring interval. Fewer than two beats: one NaN row per beat."""
    r = np.asarray(samples, dtype=np.float64) / fs
    n = len(r)
    out = np.full((n, len(RR_FEATURES)), np.nan)
    if n < 2:
        return out
    rr = np.diff(r)
    pre = np.concatenate([[rr[0]], rr])
    post = np.concatenate([rr, [rr[-1]]])
    cumulative = np.concatenate([[0.0], np.cumsum(pre)])
    index = np.arange(n)
    first = np.maximum(index - LOCAL_BEATS // 2, 0)
    last = np.minimum(index + LOCAL_BEATS - LOCAL_BEATS // 2, n)
    local = (cumulative[last] - cumulative[first]) / (last - first)
    lo = np.searchsorted(r, r - AVERAGE_S)
    hi = np.searchsorted(r, r + AVERAGE_S, side="right")
    average = (cumulative[hi] - cumulative[lo]) / np.maximum(hi - lo, 1)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = pre, post, local, average
    out[:, 4], out[:, 5] = pre / local, post / local
    out[:, 6], out[:, 7] = pre / average, post / pre
    return out


def beat_length(fs: float) -> int:
    """Samples in one beat window at `fs` Hz."""
    return int(round(BEFORE_S * fs)) + int(round(AFTER_S * fs))


def beat_windows(cleaned: np.ndarray, samples: np.ndarray, fs: float) -> np.ndarray:
    """(n_beats, beat_length(fs)) windows of the cleaned lead around each R-peak, scaled by the
    record's median absolute deviation; a window running past either end is padded with 0."""
    x = np.asarray(cleaned, dtype=np.float64)
    finite = x[np.isfinite(x)]
    centre = float(np.median(finite)) if len(finite) else 0.0
    spread = float(np.median(np.abs(finite - centre))) if len(finite) else 0.0
    scale = 1.4826 * spread if spread > 1e-9 else 1.0
    before = int(round(BEFORE_S * fs))
    width = beat_length(fs)
    padded = np.concatenate([np.zeros(width), np.nan_to_num((x - centre) / scale), np.zeros(width)])
    starts = np.asarray(samples, dtype=np.int64) - before + width
    index = starts[:, None] + np.arange(width)[None, :]
    return padded[np.clip(index, 0, len(padded) - 1)].astype(np.float32)


def beat_rows(cleaned: np.ndarray, samples: np.ndarray, fs: float) -> np.ndarray:
    """One float32 row per beat: `RR_FEATURES` then the beat window (`beat_windows`)."""
    return np.hstack([rr_features(samples, fs).astype(np.float32),
                      beat_windows(cleaned, samples, fs)])


def recording_beats(signal: Signal) -> tuple[np.ndarray, np.ndarray]:
    """(beat rows, R-peak times in seconds) of a new recording: lead MLII when it has one, else
    its first channel, at `BEATS_FS`, R-peaks by `BEAT_DETECTOR`."""
    from iatros.data.signals.processing import clean_ecg, detect_rpeaks, resample

    lead = BEAT_LEAD if BEAT_LEAD in signal.channels else 0
    signal = signal.select([lead])
    if abs(signal.fs - BEATS_FS) > 1e-6:
        signal = resample(signal, BEATS_FS)
    problems = signal.problems()
    if problems:
        raise CorruptDataError(f"{signal.source or 'recording'}: {'; '.join(problems)}")
    cleaned = clean_ecg(signal.data[:, 0], BEATS_FS)
    peaks = detect_rpeaks(cleaned, BEATS_FS, method=BEAT_DETECTOR, clean=False)
    if len(peaks) < 2:
        raise CorruptDataError(f"{signal.source or 'recording'}: {len(peaks)} R-peak(s) found; "
                               f"beats need at least 2")
    return beat_rows(cleaned, peaks, BEATS_FS), peaks / BEATS_FS


def beat_feature_names(fs: float) -> list[str]:
    """Column names of `beat_rows`: the RR features, then ecg_<ms from the R-peak>."""
    before = int(round(BEFORE_S * fs))
    return [*RR_FEATURES, *(f"ecg_{round((k - before) / fs * 1000):+d}ms"
                            for k in range(beat_length(fs)))]
