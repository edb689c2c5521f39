"""A monitored patient's trend charts as SVG geometry computed server-side (the template draws
the elements, so the page needs no script and no inline style): NEWS2 and each vital over
record time, the range that scores 0 on NEWS2 shaded, NEWS2's medium and high thresholds
drawn, each reading a point whose tooltip gives its time and value; and the latest ECG
segments as strips on ECG paper (``ecg_strip``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from iatros.monitoring.news2 import BANDS, SPO2_BANDS, Band

WIDTH, HEIGHT = 720, 140
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 8, 22
MAX_MARKS = 400   # above this many readings a chart draws the line only
ACVPU = ("U", "P", "V", "C", "A")   # bottom to top: alert at the top, as on the chart
NEWS2_THRESHOLDS = ((5, "medium", 11), (7, "high", -3))   # score, band, label below/above


@dataclass(frozen=True)
class Series:
    """One chart: what it plots, its words, and the y range it always shows."""

    name: str
    label: str
    unit: str
    low: float
    high: float


SERIES = (
    Series("news2", "NEWS2", "", 0, 10),
    Series("respiration_rate", "Respiration rate", "/min", 5, 35),
    Series("spo2", "SpO2", "%", 82, 100),
    Series("systolic_bp", "Systolic BP", "mmHg", 70, 200),
    Series("pulse", "Pulse", "/min", 30, 150),
    Series("temperature", "Temperature", "C", 34.5, 40.0),
    Series("consciousness", "Consciousness", "ACVPU", 0, len(ACVPU) - 1),
)


@dataclass(frozen=True)
class Mark:
    """A reading on a chart: its position, tooltip and class (risk band or out of range)."""

    x: float
    y: float
    label: str
    cls: str


@dataclass
class Chart:
    """What the template draws for one series."""

    name: str
    label: str
    unit: str
    line: str = ""
    marks: list[Mark] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    shade: tuple[float, float] | None = None          # y and height of the range scoring 0
    thresholds: list[tuple[float, str, int]] = field(default_factory=list)
    count: int = 0
    width: int = WIDTH
    height: int = HEIGHT
    plot: tuple[float, float, float, float] = (LEFT, TOP, WIDTH - LEFT - RIGHT,
                                               HEIGHT - TOP - BOTTOM)


def utc(t: float | None, seconds: bool = True) -> str:
    """A record time (seconds since 1970) as UTC text, the way every monitoring page shows it."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%H:%M")


def _zero_range(bands: tuple[Band, ...]) -> tuple[float, float]:
    """The values a parameter's Chart 1 row scores 0 for (above the previous band's upper)."""
    for i, band in enumerate(bands):
        if band.points == 0:
            return (bands[i - 1].upper if i else -math.inf), band.upper
    return math.inf, math.inf


def normal_range(name: str, scale: int) -> tuple[float, float] | None:
    """The range scoring 0 (SpO2 on the patient's scale, on oxygen: its target range)."""
    if name == "spo2":
        return _zero_range(SPO2_BANDS[(scale, True)])
    return _zero_range(BANDS[name]) if name in BANDS else None


def _value(reading: dict[str, Any], name: str) -> float | None:
    if name == "news2":
        return reading.get("news2")
    value = reading["values"].get(name)
    if name == "consciousness":
        return float(ACVPU.index(value)) if value in ACVPU else None
    return None if value is None or isinstance(value, bool) else float(value)


def _step(span: float, most: int, steps: tuple[float, ...]) -> float:
    return next((s for s in steps if span / s <= most), steps[-1])


def _cls(series: Series, reading: dict[str, Any], value: float,
         normal: tuple[float, float] | None) -> str:
    if series.name == "news2":
        return f"risk-{reading.get('risk', 'low')}"
    out = "o2" if series.name == "spo2" and reading["values"].get("on_oxygen") else ""
    if series.name == "consciousness":
        return out + (" off" if value != ACVPU.index("A") else "")
    if normal is not None and not normal[0] < value <= normal[1]:
        out += " off"
    return out.strip()


def _label(series: Series, reading: dict[str, Any], value: float) -> str:
    if series.name == "consciousness":
        shown = ACVPU[int(value)]
    elif series.name == "news2":
        shown = f"{value:g} ({reading.get('risk', '')}"
        shown += ")" if reading.get("complete", True) else ", incomplete)"
    else:
        shown = f"{value:g} {series.unit}".strip()
        if series.name == "spo2":
            shown += " on oxygen" if reading["values"].get("on_oxygen") else ""
    return f"{utc(reading['time'])} UTC: {shown}"


def chart(series: Series, readings: list[dict[str, Any]], start: float, end: float,
          scale: int = 1) -> Chart:
    """One series over [start, end] of record time."""
    out = Chart(series.name, series.label, series.unit)
    x0, y0, w, h = out.plot
    points = [(r, v) for r in readings if (v := _value(r, series.name)) is not None]
    low = min([series.low, *(v for _, v in points)])
    high = max([series.high, *(v for _, v in points)])
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return round(x0 + (t - start) / span * w, 1)

    def y(v: float) -> float:
        return round(y0 + (high - v) / (high - low) * h, 1)

    normal = normal_range(series.name, scale)
    if normal is not None:
        top, bottom = min(normal[1], high), max(normal[0], low)
        if top > bottom:
            out.shade = (y(top), round(y(bottom) - y(top), 1))
    if series.name == "news2":
        out.thresholds = [(y(v), f"{v}+ {risk}", dy) for v, risk, dy in NEWS2_THRESHOLDS
                          if v <= high]
    if series.name == "consciousness":
        out.y_ticks = [(y(i), letter) for i, letter in enumerate(ACVPU)]
    else:
        step = _step(high - low, 5, (0.5, 1, 2, 5, 10, 20, 25, 50, 100))
        first = math.ceil(low / step) * step
        out.y_ticks = [(y(v), f"{v:g}") for v in _frange(first, high, step)]
    hours = _step(span / 3600.0, 8, (0.25, 0.5, 1, 2, 3, 4, 6, 12, 24, 48))
    every = hours * 3600.0
    out.x_ticks = [(x(t), utc(t, seconds=False))
                   for t in _frange(math.ceil(start / every) * every, end, every)]
    out.line = " ".join(f"{x(r['time'])},{y(v)}" for r, v in points)
    out.count = len(points)
    if len(points) <= MAX_MARKS:
        out.marks = [Mark(x(r["time"]), y(v), _label(series, r, v), _cls(series, r, v, normal))
                     for r, v in points]
    return out


def _frange(first: float, last: float, step: float) -> list[float]:
    count = int(math.floor((last - first) / step + 1e-9)) + 1
    return [round(first + i * step, 6) for i in range(max(count, 0))]


def charts(readings: list[dict[str, Any]], start: float, end: float,
           scale: int = 1) -> list[Chart]:
    """Every series of a patient's trend (`Monitor.trend` rows) over [start, end]."""
    return [chart(s, readings, start, end, scale) for s in SERIES]


# --- ECG strips ---------------------------------------------------------------------------------
# Drawn as on ECG paper: 25 mm/s and 10 mm/mV, a 1 mm grid with a heavier line every 5 mm
# (0.2 s, 0.5 mV), ECG_ROW_S seconds a row. A row of several thousand samples is reduced to the
# lowest and highest sample of each pixel column, which keeps every QRS peak a full trace shows.
ECG_ROW_S = 10.0
ECG_PX_PER_MM = 2.8
ECG_PX_PER_S = 25 * ECG_PX_PER_MM
ECG_PX_PER_MV = 10 * ECG_PX_PER_MM
ECG_LEFT, ECG_TOP = 6.0, 4.0
ECG_MV = (3.0, 6.0)      # the height of a strip's rows in mV: at least, at most (then clipped)
ECG_STEP_MV = 0.5
ECG_STRIPS = 3           # segments shown on a patient's page, newest first


@dataclass
class EcgRow:
    """One row of a strip: its trace, size, the seconds it covers and how many samples of it
    lie outside the drawn range (clipped)."""

    line: str
    width: float
    height: float
    start_s: float
    end_s: float
    clipped: int = 0


@dataclass
class EcgStrip:
    """What the template draws for one ECG segment, with the rhythm result that belongs to it."""

    time: float
    at: str
    seconds: float
    fs: float
    lead: str | None
    device: str
    seq: int
    low_mv: float
    high_mv: float
    rows: list[EcgRow] = field(default_factory=list)
    result: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    grid: tuple[float, float, float, float] = (ECG_LEFT, ECG_TOP, ECG_PX_PER_MM,
                                               5 * ECG_PX_PER_MM)
    row_s: float = ECG_ROW_S

    @property
    def clipped(self) -> int:
        return sum(r.clipped for r in self.rows)


def _ecg_range(x: np.ndarray) -> tuple[float, float]:
    """The mV range a strip's rows show: its samples (0.5-99.5th percentile) with a margin, on
    the 0.5 mV grid, ECG_MV[0] to ECG_MV[1] tall (a taller strip is centred on its median)."""
    if not len(x):
        return -1.0, 2.0
    lo, hi = (float(v) for v in np.percentile(x, [0.5, 99.5]))
    step = ECG_STEP_MV
    low, high = math.floor((lo - 0.25) / step) * step, math.ceil((hi + 0.25) / step) * step
    if high - low < ECG_MV[0]:
        extra = math.ceil((ECG_MV[0] - (high - low)) / 2 / step) * step
        low, high = low - extra, high + extra
    if high - low > ECG_MV[1]:
        middle = round(float(np.median(x)) / step) * step
        low, high = middle - ECG_MV[1] / 2, middle + ECG_MV[1] / 2
    return low, high


def _ecg_row(x: np.ndarray, fs: float, first: int, low: float, high: float) -> EcgRow:
    """One row's trace: min and max per pixel column where samples outnumber pixels."""
    n = len(x)
    width = round(n / fs * ECG_PX_PER_S, 1)
    columns = max(1, int(math.ceil(width)))
    t = np.arange(n, dtype=np.float64)
    if n > 2 * columns:
        edges = (np.arange(columns) * n / columns).astype(np.int64)
        middles = edges + (np.diff(np.append(edges, n)) - 1) / 2
        x = np.column_stack([np.minimum.reduceat(x, edges),
                             np.maximum.reduceat(x, edges)]).ravel()
        t = np.repeat(middles, 2)
    clipped = int(((x < low) | (x > high)).sum())
    xs = np.round(ECG_LEFT + t / fs * ECG_PX_PER_S, 1)
    ys = np.round(ECG_TOP + (high - np.clip(x, low, high)) * ECG_PX_PER_MV, 1)
    line = " ".join(f"{a:g},{b:g}" for a, b in zip(xs.tolist(), ys.tolist(), strict=True))
    return EcgRow(line, width, round((high - low) * ECG_PX_PER_MV, 1), first / fs,
                  (first + n) / fs, clipped)


def ecg_strip(stored: Any, result: dict[str, Any] | None = None,
              alerts: list[dict[str, Any]] | None = None) -> EcgStrip:
    """A stored segment (`MonitorStore.segments`) as rows of ECG_ROW_S seconds; ``result`` the
    rhythm result when it is this segment's, ``alerts`` the rhythm alerts it raised."""
    segment = stored.segment
    x = np.asarray(segment.samples, dtype=np.float64)
    fs = float(segment.fs)
    low, high = _ecg_range(x)
    strip = EcgStrip(stored.time, utc(stored.time), len(x) / fs, fs, segment.lead,
                     stored.device, stored.seq, low, high, result=result,
                     alerts=list(alerts or []))
    per_row = max(1, int(round(ECG_ROW_S * fs)))
    for first in range(0, len(x), per_row):
        part = x[first:first + per_row]
        strip.rows.append(_ecg_row(part, fs, first, low, high))
    return strip
