"""R-peak detection scored against reference beat annotations, the ANSI/AAMI EC57 way.

A detected beat matches a reference beat when they lie within `tolerance_s` (150 ms, EC57's
match window) of each other; matching is one-to-one, closest pairs first, so a reference beat is
counted at most once and a second detection near it is a false positive. Sensitivity is
Se = TP / (TP + FN), positive predictivity +P = TP / (TP + FP). Records are scored whole by
default (no learning period left out); `skip_s` leaves out the first and last seconds of a record
(reference and detections alike), where a detector may still be settling. Reference beats are
the annotations whose symbol marks a beat (`BEAT_SYMBOLS`); rhythm changes, noise, non-conducted
P waves, ventricular flutter waves and the like are not beats. As EC57 (and PhysioNet's `bxb`)
prescribe, ventricular flutter or fibrillation episodes (from a `[` annotation to the next `]`,
both included; without a `]`, to the end) are not scored: reference beats inside are left out,
and so is a detection inside that no scored beat claims (one paired with a beat outside counts
as a match). `score_vf=True` scores them like the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.data.signals.readers import read_annotations, read_signal
from iatros.data.signals.record import Signal
from iatros.errors import ConfigError, MissingDataError

# WFDB / PhysioNet beat annotation codes (ecgcodes.h; the MIT-BIH Arrhythmia Database directory):
# normal, bundle branch blocks, atrial / aberrated / nodal / supraventricular premature,
# ventricular premature and R-on-T, fusion, atrial / nodal / supraventricular / ventricular
# escape, paced, fusion of paced and normal, unclassifiable, and beat not classified in learning.
BEAT_SYMBOLS: frozenset[str] = frozenset(
    ["N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?"])
TOLERANCE_S = 0.150
VF_ONSET, VF_OFFSET = "[", "]"


def reference_beats(annotations: Iterable[Any]) -> np.ndarray:
    """Sample indices of the annotations that mark beats (sorted), the reference to score against."""
    samples = [int(a.sample) for a in annotations if a.symbol in BEAT_SYMBOLS]
    return np.sort(np.asarray(samples, dtype=np.int64))


def vf_episodes(annotations: Iterable[Any], n_samples: int) -> list[tuple[int, int]]:
    """[start, stop] sample ranges (both included) of ventricular flutter or fibrillation."""
    episodes: list[tuple[int, int]] = []
    start = None
    for a in sorted(annotations, key=lambda a: int(a.sample)):
        if a.symbol == VF_ONSET and start is None:
            start = int(a.sample)
        elif a.symbol == VF_OFFSET and start is not None:
            episodes.append((start, int(a.sample)))
            start = None
    if start is not None:
        episodes.append((start, max(n_samples - 1, start)))
    return episodes


def _in_episodes(samples: np.ndarray, episodes: Sequence[tuple[int, int]]) -> np.ndarray:
    inside = np.zeros(samples.size, dtype=bool)
    for start, stop in episodes:
        inside |= (samples >= start) & (samples <= stop)
    return inside


def _as_samples(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    """A 1-D integer array of sample indices; a clear error for anything else."""
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
        raise ConfigError(f"{name}: expected a 1-D sequence of sample indices, got shape {arr.shape} "
                          f"of {arr.dtype}")
    return arr.astype(np.int64)


def _candidate_pairs(detected: np.ndarray, reference: np.ndarray, tol: float) -> np.ndarray:
    """Every (distance, reference index, detected index) within the tolerance, closest first."""
    ref_order = np.argsort(reference, kind="stable")
    ref_sorted = reference[ref_order]
    lo = np.searchsorted(ref_sorted, detected - tol, side="left")
    hi = np.searchsorted(ref_sorted, detected + tol, side="right")
    counts = hi - lo
    det_idx = np.repeat(np.arange(detected.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    ref_idx = ref_order[np.repeat(lo, counts) + offsets]
    dist = np.abs(detected[det_idx] - reference[ref_idx])
    order = np.lexsort((det_idx, ref_idx, dist))
    return np.stack([dist[order], ref_idx[order], det_idx[order]], axis=1)


def _ratio(num: int, den: int) -> float | None:
    """num / den, or None when there is nothing to divide (no reference or no detection)."""
    return num / den if den else None


def match_beats(detected: Sequence[int] | np.ndarray, reference: Sequence[int] | np.ndarray, fs: float,
                tolerance_s: float = TOLERANCE_S,
                unscored: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
    """Match detections to reference beats one-to-one within the tolerance, closest pairs first;
    return tp, fn, fp, sensitivity and positive_predictivity (None when undefined). Inside the
    `unscored` [start, stop] ranges reference beats are left out and unpaired detections too."""
    if fs <= 0 or tolerance_s < 0:
        raise ConfigError(f"match_beats: need fs > 0 and tolerance_s >= 0, got fs={fs}, "
                          f"tolerance_s={tolerance_s}")
    det = _as_samples(detected, "detected")
    ref = _as_samples(reference, "reference")
    ref_out = _in_episodes(ref, unscored)
    ref = ref[~ref_out]
    used_ref = np.zeros(ref.size, dtype=bool)
    used_det = np.zeros(det.size, dtype=bool)
    tp = 0
    for _, r, d in _candidate_pairs(det, ref, tolerance_s * fs):
        if not used_ref[r] and not used_det[d]:
            used_ref[r] = used_det[d] = True
            tp += 1
    det_out = _in_episodes(det, unscored) & ~used_det
    fn, fp = int(ref.size - tp), int(det.size - det_out.sum() - tp)
    return {"beats": int(ref.size), "detected": int(det.size - det_out.sum()), "tp": tp, "fn": fn,
            "fp": fp, "sensitivity": _ratio(tp, tp + fn), "positive_predictivity": _ratio(tp, tp + fp),
            "unscored_beats": int(ref_out.sum()), "unscored_detections": int(det_out.sum())}


def pooled(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Gross statistics over records: TP, FN and FP summed, then Se and +P (EC57's gross figures)."""
    tp = fn = fp = records = 0
    for row in rows:
        tp, fn, fp, records = tp + row["tp"], fn + row["fn"], fp + row["fp"], records + 1
    return {"records": records, "beats": tp + fn, "detected": tp + fp, "tp": tp, "fn": fn, "fp": fp,
            "sensitivity": _ratio(tp, tp + fn), "positive_predictivity": _ratio(tp, tp + fp)}


def _inside(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The samples in [start, stop)."""
    return samples[(samples >= start) & (samples < stop)]


def record_paths(path: str | Path, reference: str = "atr") -> list[Path]:
    """The WFDB header (.hea) of a record given with or without a suffix, or of every record below a
    folder that has a `reference` annotation file beside it (sorted)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(h for h in path.rglob("*.hea") if h.with_suffix(f".{reference}").is_file())
        if not found:
            raise MissingDataError(f"{path}: no WFDB record (.hea) with a .{reference} annotation file below "
                                   "this folder")
        return found
    if path.suffix.lower() in (".hea", ".dat", f".{reference}".lower(), ".atr"):
        path = path.with_suffix("")
    header = path.with_name(path.name + ".hea")
    if not header.is_file():
        raise MissingDataError(f"{path}: no WFDB record here (expected its header {header})")
    return [header]


def check_methods(methods: Iterable[str]) -> list[str]:
    """The detector names, each checked against the processing module's list (lower case, deduplicated)."""
    from iatros.data.signals.processing import RPEAK_METHODS

    chosen = list(dict.fromkeys(m.strip().lower() for m in methods))
    unknown = [m for m in chosen if m not in RPEAK_METHODS]
    if unknown or not chosen:
        raise ConfigError(f"unknown R-peak method(s) {unknown or '(none given)'}; choose from "
                          f"{sorted(RPEAK_METHODS)}")
    return chosen


def read_record(path: str | Path, channel: int | str = 0,
                reference: str = "atr") -> tuple[Signal, np.ndarray, list[tuple[int, int]]]:
    """One channel of a record (channel 0 is MLII on MIT-BIH), its reference beat samples and its
    ventricular flutter / fibrillation episodes."""
    headers = record_paths(path, reference)
    if len(headers) != 1:
        raise ConfigError(f"{path}: a folder of {len(headers)} records; give one record")
    header = headers[0]
    signal = read_signal(header, channels=[channel])
    annotations = read_annotations(header, extension=reference)
    return signal, reference_beats(annotations), vf_episodes(annotations, signal.n_samples)


def score_signal(signal: Signal, reference: np.ndarray, method: str, *, tolerance_s: float = TOLERANCE_S,
                 skip_s: float = 0.0, unscored: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
    """Detect R peaks on the signal's first channel at its own rate and score them against `reference`;
    with `skip_s`, beats and detections in the first and last `skip_s` seconds are left out, and
    inside the `unscored` ranges (VF episodes) as `match_beats` says."""
    from iatros.data.signals.processing import detect_rpeaks

    start = time.perf_counter()
    detected = np.asarray(detect_rpeaks(signal.data[:, 0], signal.fs, method=method), dtype=np.int64)
    seconds = time.perf_counter() - start
    lo = int(round(max(skip_s, 0.0) * signal.fs))
    hi = signal.n_samples - lo
    scored = match_beats(_inside(detected, lo, hi), _inside(reference, lo, hi), signal.fs, tolerance_s,
                         unscored)
    return {"record": _record_name(signal.source), "source": signal.source, "method": method,
            "channel": signal.channels[0], "fs": signal.fs, "duration_s": round(signal.duration_s, 3),
            "tolerance_s": tolerance_s, "skip_s": skip_s, **scored, "seconds": round(seconds, 4)}


def score_record(path: str | Path, method: str, channel: int | str = 0, reference: str = "atr", *,
                 tolerance_s: float = TOLERANCE_S, skip_s: float = 0.0,
                 score_vf: bool = False) -> dict[str, Any]:
    """Read a record and its reference annotations, detect R peaks on one channel with `method`,
    score (VF episodes left out unless `score_vf`)."""
    signal, beats, episodes = read_record(path, channel, reference)
    return score_signal(signal, beats, method, tolerance_s=tolerance_s, skip_s=skip_s,
                        unscored=() if score_vf else episodes)


def _record_name(source: str) -> str:
    """A record's name from its path (`mitdb/100.hea` -> `100`)."""
    name = Path(source).name
    return name[:-4] if name.lower().endswith(".hea") else name
