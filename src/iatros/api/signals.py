"""Physiological signals at the api level: R-peak detectors scored against a record's reference beat
annotations, record by record. One unreadable record never stops a batch: it becomes an entry
`{"source", "record", "error"}` and the rest go on. Loads neither torch nor the run pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from iatros.data.signals.rpeaks import (
    TOLERANCE_S,
    check_methods,
    pooled,
    read_record,
    record_paths,
    score_signal,
)
from iatros.errors import IatrosError


def _failure(source: Path | str, error: BaseException, method: str | None = None) -> dict[str, Any]:
    """A batch entry for a record (or one method on it) that could not be scored, naming the record."""
    name = Path(source).name.removesuffix(".hea")
    message = str(error) if isinstance(error, IatrosError) else f"{type(error).__name__}: {error}"
    if str(source) not in message:
        message = f"{source}: {message}"
    if method:
        message = f"{message} (method {method})"
    entry = {"source": str(source), "record": name, "error": message}
    return {**entry, "method": method} if method else entry


def _records(paths: Iterable[str | Path], reference: str) -> list[Path | dict[str, Any]]:
    """Each input's record headers (folders expanded), or an error entry for an input with none."""
    found: list[Path | dict[str, Any]] = []
    for raw in paths:
        try:
            found.extend(record_paths(raw, reference))
        except IatrosError as e:
            found.append(_failure(raw, e))
    return found


def _score_record(header: Path, methods: Sequence[str], *, reference: str, channel: int | str,
                  tolerance_s: float, skip_s: float, score_vf: bool) -> list[dict[str, Any]]:
    """Read one record once and score every method on it; failures become entries naming it."""
    try:
        signal, beats, episodes = read_record(header, channel, reference)
    except Exception as e:  # a damaged record or an unforeseen input: report it, keep the batch going
        return [_failure(header, e)]
    rows = []
    for method in methods:
        try:
            rows.append(score_signal(signal, beats, method, tolerance_s=tolerance_s, skip_s=skip_s,
                                     unscored=() if score_vf else episodes))
        except Exception as e:  # a detector crashing on this record
            rows.append(_failure(header, e, method))
    return rows


def rpeaks(paths: Iterable[str | Path], *, methods: Sequence[str] = ("neurokit",), reference: str = "atr",
           channel: int | str = 0, tolerance_s: float = TOLERANCE_S, skip_s: float = 0.0,
           score_vf: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """Score R-peak detectors on WFDB records (paths with or without suffix, or folders: every record
    with a `reference` annotation file): one row per record and method with beats, TP, FN, FP,
    sensitivity, positive predictivity and detection seconds; unreadable records as error entries.
    Ventricular flutter / fibrillation episodes are not scored (EC57) unless `score_vf`."""
    chosen = check_methods(methods)
    results: list[dict[str, Any]] = []
    for item in tqdm(_records(paths, reference), desc="records", unit="record", disable=not progress):
        if isinstance(item, dict):
            results.append(item)
            continue
        results.extend(_score_record(item, chosen, reference=reference, channel=channel,
                                     tolerance_s=tolerance_s, skip_s=skip_s, score_vf=score_vf))
    return results


def pooled_by_method(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gross Se and +P per method over the scored records (TP, FN, FP summed), in first-seen order."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for row in results:
        if "error" not in row:
            by_method.setdefault(row["method"], []).append(row)
    return [{"method": method, **pooled(rows), "seconds": round(sum(r["seconds"] for r in rows), 4)}
            for method, rows in by_method.items()]
