"""One recording of physiological signals (ECG, PPG, ...) in physical units, with its annotations."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from iatros.errors import ConfigError, CorruptDataError


@dataclass(frozen=True)
class Annotation:
    """One labelled sample: a WFDB beat ("N", "V"), a rhythm change ("+" with aux "(AFIB"), an EDF+ event.

    `channel` is the source's channel number it was marked on (WFDB `chan`, almost always 0 for beats
    that belong to the whole recording); selecting channels keeps every annotation as it is."""

    sample: int
    symbol: str
    aux: str = ""
    channel: int = 0


@dataclass
class Signal:
    """Samples (n_samples, n_channels) in physical units at one rate: the one shape every signal step sees."""

    data: np.ndarray
    fs: float
    channels: list[str]
    units: list[str]
    start: datetime | None = None
    annotations: list[Annotation] = field(default_factory=list)
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Check shape, rate and names now, so a bad recording fails where it was read, naming its file."""
        where = self.source or "signal"
        try:
            data = np.asarray(self.data, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise CorruptDataError(f"{where}: samples are not numeric ({e})") from e
        if data.ndim == 1:
            data = data.reshape(-1, 1)
        if data.ndim != 2:
            raise CorruptDataError(f"{where}: expected samples shaped (n_samples, n_channels), "
                                   f"got {data.shape}")
        self.data = data
        try:
            fs = float(self.fs)
        except (TypeError, ValueError) as e:
            raise CorruptDataError(f"{where}: sampling rate {self.fs!r} is not a number") from e
        if not math.isfinite(fs) or fs <= 0:
            raise CorruptDataError(f"{where}: sampling rate must be a finite number of Hz > 0, "
                                   f"got {self.fs!r}")
        self.fs = fs
        self.channels = [str(c) for c in self.channels]
        self.units = [str(u) for u in self.units]
        for what, names in (("channel names", self.channels), ("units", self.units)):
            if len(names) != data.shape[1]:
                raise CorruptDataError(f"{where}: {len(names)} {what} {names} for {data.shape[1]} channels")

    @property
    def n_samples(self) -> int:
        """Samples per channel."""
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        """Length in seconds (n_samples / fs)."""
        return self.n_samples / self.fs

    @property
    def time(self) -> np.ndarray:
        """Seconds from the first sample, one per sample."""
        return np.arange(self.n_samples, dtype=np.float64) / self.fs

    def index(self, channel: int | str) -> int:
        """Column of a channel given by name or position; a clear error lists the channels there are."""
        if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
            if -self.n_channels <= int(channel) < self.n_channels:
                return int(channel) % self.n_channels
        elif channel in self.channels:
            return self.channels.index(str(channel))
        raise ConfigError(f"{self.source or 'signal'} has no channel {channel!r}; channels: {self.channels}")

    def channel(self, channel: int | str) -> np.ndarray:
        """One channel's samples as a 1-D array."""
        return self.data[:, self.index(channel)]

    def select(self, channels: Sequence[int | str]) -> Signal:
        """A copy holding only the given channels (names or positions), in that order; annotations kept."""
        if isinstance(channels, (str, int)):
            channels = [channels]
        cols = [self.index(c) for c in channels]
        return dataclasses.replace(
            self, data=self.data[:, cols].copy(), channels=[self.channels[c] for c in cols],
            units=[self.units[c] for c in cols], annotations=list(self.annotations), notes=list(self.notes))

    def slice(self, start_s: float = 0.0, end_s: float | None = None) -> Signal:
        """The part between two times in seconds (end excluded), annotations and start time shifted."""
        lo = max(0, int(round(start_s * self.fs)))
        hi = self.n_samples if end_s is None else min(self.n_samples, int(round(end_s * self.fs)))
        hi = max(hi, lo)
        return self.samples(lo, hi)

    def samples(self, lo: int, hi: int) -> Signal:
        """The samples lo..hi-1 as a Signal, annotations and start time shifted."""
        start = None if self.start is None else self.start + timedelta(seconds=lo / self.fs)
        kept = [dataclasses.replace(a, sample=a.sample - lo) for a in self.annotations if lo <= a.sample < hi]
        return dataclasses.replace(self, data=self.data[lo:hi].copy(), start=start, annotations=kept,
                                   notes=list(self.notes))

    def with_data(self, data: np.ndarray, fs: float | None = None, note: str = "") -> Signal:
        """The same recording with new samples (a filter's output), annotations rescaled if fs changes."""
        fs = self.fs if fs is None else fs
        ratio = fs / self.fs
        n = np.asarray(data).shape[0]
        notes = [dataclasses.replace(a, sample=int(round(a.sample * ratio))) for a in self.annotations]
        return dataclasses.replace(self, data=data, fs=fs,
                                   annotations=[a for a in notes if 0 <= a.sample < max(n, 1)],
                                   notes=[*self.notes, note] if note else list(self.notes))

    def problems(self) -> list[str]:
        """Channels that carry no usable signal (all NaN, flat, mostly NaN); empty when all look usable."""
        return channel_problems(self)


def channel_problems(signal: Signal, *, max_nan_fraction: float = 0.5) -> list[str]:
    """One line per unusable channel (all NaN, flat, more than half NaN), so callers can skip or flag it."""
    lines: list[str] = []
    where = signal.source or "signal"
    if signal.n_samples == 0:
        return [f"{where}: no samples"]
    for i, name in enumerate(signal.channels):
        x = signal.data[:, i]
        finite = np.isfinite(x)
        if not finite.any():
            lines.append(f"{where}: channel {name!r} is all NaN")
        elif np.ptp(x[finite]) == 0:
            lines.append(f"{where}: channel {name!r} is flat (constant {x[finite][0]:g} {signal.units[i]})")
        elif 1 - finite.mean() > max_nan_fraction:
            lines.append(f"{where}: channel {name!r} is {100 * (1 - finite.mean()):.0f}% NaN")
    return lines
