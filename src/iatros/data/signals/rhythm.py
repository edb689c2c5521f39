"""Rhythm episodes from WFDB rhythm annotations ("+" marks whose aux note names the rhythm that
starts there, e.g. "(AFIB", "(N", "(VT"), and how much of a window each rhythm covers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iatros.data.signals.record import Annotation

RHYTHM_MARK = "+"


@dataclass(frozen=True)
class Episode:
    """One stretch of a rhythm: samples [start, stop) at the annotation's rate."""

    start: int
    stop: int
    rhythm: str

    @property
    def length(self) -> int:
        return self.stop - self.start


def rhythm_episodes(annotations: Sequence[Annotation], n_samples: int) -> list[Episode]:
    """Episodes from rhythm changes: each "+" mark starts its rhythm, which lasts until the next
    mark or the end; before the first mark the rhythm is unknown ("")."""
    marks = sorted((a.sample, a.aux.strip().lstrip("(").rstrip("\x00").strip()) for a in annotations
                   if a.symbol == RHYTHM_MARK and a.aux.strip())
    episodes: list[Episode] = []
    starts = [0, *(s for s, _ in marks)]
    rhythms = ["", *(r for _, r in marks)]
    for k, (start, rhythm) in enumerate(zip(starts, rhythms, strict=True)):
        stop = starts[k + 1] if k + 1 < len(starts) else n_samples
        start, stop = max(0, min(start, n_samples)), max(0, min(stop, n_samples))
        if stop > start:
            episodes.append(Episode(start, stop, rhythm))
    return episodes


def rhythm_fraction(episodes: Sequence[Episode], start: int, stop: int, rhythm: str) -> float:
    """Share of samples [start, stop) inside episodes of `rhythm`."""
    if stop <= start:
        return 0.0
    covered = sum(max(0, min(e.stop, stop) - max(e.start, start)) for e in episodes
                  if e.rhythm == rhythm)
    return covered / (stop - start)


def window_starts(n_samples: int, length: int) -> np.ndarray:
    """Starts of the whole, non-overlapping windows of `length` samples in a recording."""
    return np.arange(0, max(n_samples - length + 1, 0), length, dtype=np.int64)
