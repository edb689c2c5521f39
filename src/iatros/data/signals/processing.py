"""Signal processing for ECG / PPG through maintained libraries only (neurokit2, scipy.signal): no
hand-written filters or detectors here, so results match what the field's tools report.

Choices:
- `resample` uses `scipy.signal.resample_poly` with the rational factor fs_new / fs (denominator at
  most 1000); the resulting `fs` is exactly fs * up / down.
- Array functions (`clean_ecg`, `detect_rpeaks`, `signal_quality`, `ppg_peaks`) take one channel;
  a flat or mostly-NaN channel has no beats (empty peaks, quality 0.0) rather than an error, and
  isolated NaNs are linearly interpolated before cleaning.
- `hrv` needs `HRV_MIN_PEAKS` R-peaks for the time domain, `HF_MIN_SECONDS` of beats for HF and
  `LF_MIN_SECONDS` for LF (Task Force 1996: at least 2 min for LF, 5 min standard); below those the
  values are NaN and `reason` says why.
- `signal_quality` averages neurokit2's per-sample ECG quality: `averageQRS` (default; relative,
  each beat against the record's average QRS) or `templatematch` (Orphanidou et al. 2015: each
  beat's correlation with the average beat, so an all-clean record scores near 1).
- `ecg_reading` summarises one channel for a reader: beats, heart rate and a quality label from the
  `templatematch` index: "good" at or above `GOOD_QUALITY` (0.66, Orphanidou et al. 2015's
  threshold for an acceptable ECG), "poor" below it, "unreadable" when no heart rate can be read
  (flat, mostly NaN, under `MIN_READING_S` seconds, or fewer than 2 R-peaks).
- `searchback` (an R-peak method) runs `manikandan2012`, then looks again with `neurokit`'s
  detector inside every RR gap longer than 1.66 times the mean of the last 8 RR intervals, keeping
  200 ms between beats: Pan & Tompkins's (1985) searchback rule and refractory period, with a second
  maintained detector in place of their lowered threshold. Its constants are theirs, not fitted here.
- `windows` refuses a recording shorter than one window with `CorruptDataError` naming its source,
  so a batch loop can catch it per record and go on; the last window is aligned to the end of the
  recording, so every sample lies in some window.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np

from iatros.data.signals.record import Signal
from iatros.errors import ConfigError, CorruptDataError

# detectors of nk.ecg_peaks that run offline here and find >= 97% of record 100's beats within 150 ms
# (gamboa2008 and ssf run but miss most beats; vg, koka2022, emrich2023 need ts2vg, not installed)
RPEAK_METHODS: tuple[str, ...] = (
    "neurokit", "pantompkins1985", "hamilton2002", "zong2003", "christov2004", "engzeemod2012",
    "elgendi2010", "kalidas2017", "martinez2004", "rodrigues2021", "manikandan2012", "nabian2018",
    "promac", "asi", "searchback",
)
# a primary detector whose long RR gaps are searched again with a second one (`searchback`)
SEARCHBACK = {"searchback": ("manikandan2012", "neurokit")}
SEARCHBACK_FACTOR = 1.66  # Pan & Tompkins 1985: a gap over 166% of the RR average is a missed beat
SEARCHBACK_BEATS = 8      # ... averaged over the last 8 RR intervals
REFRACTORY_S = 0.2        # ... and no beat within 200 ms of another
# nk.ecg_clean methods; a detector with its own cleaning uses it, the others neurokit's
CLEAN_METHODS: tuple[str, ...] = (
    "neurokit", "biosppy", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012",
    "templateconvolution",
)
POWERLINE_FREQUENCIES = (50, 60)
QUALITY_METHODS = ("averageQRS", "templatematch")
GOOD_QUALITY = 0.66  # Orphanidou et al. 2015: mean beat-template correlation of an acceptable ECG
MIN_READING_S = 2.0  # shorter than this, a recording holds too few beats to read a heart rate
HRV_MIN_PEAKS = 5
HF_MIN_SECONDS = 60.0
LF_MIN_SECONDS = 120.0
MAX_DENOMINATOR = 1000


# ---------------------------------------------------------------- whole recordings


def resample(signal: Signal, fs_new: float) -> Signal:
    """The recording at a new rate (polyphase, anti-aliased), annotations moved to the new samples."""
    from scipy.signal import resample_poly

    if not (math.isfinite(fs_new) and fs_new > 0):
        raise ConfigError(f"{signal.source or 'signal'}: new sampling rate must be > 0 Hz, got {fs_new!r}")
    ratio = Fraction(fs_new / signal.fs).limit_denominator(MAX_DENOMINATOR)
    if ratio == 1:
        return signal.with_data(signal.data.copy())
    data = resample_poly(signal.data, ratio.numerator, ratio.denominator, axis=0)
    fs = signal.fs * ratio.numerator / ratio.denominator
    return signal.with_data(data, fs=fs, note=f"resampled from {signal.fs:g} Hz to {fs:g} Hz")


def bandpass(signal: Signal, low: float | None, high: float | None, order: int = 5) -> Signal:
    """Zero-phase Butterworth band-pass (nk.signal_filter); None on one side makes it a high/low-pass."""
    _check_band(signal, low, high)
    data = _per_channel(signal, lambda x: _nk().signal_filter(
        x, sampling_rate=signal.fs, lowcut=low, highcut=high, method="butterworth", order=order))
    return signal.with_data(data, note=f"band-pass {low}-{high} Hz (Butterworth order {order})")


def powerline(signal: Signal, freq: int = 50) -> Signal:
    """Mains interference (50 or 60 Hz) removed with neurokit2's powerline filter."""
    if freq not in POWERLINE_FREQUENCIES:
        raise ConfigError(f"powerline frequency must be one of {POWERLINE_FREQUENCIES} Hz, got {freq!r}")
    data = _per_channel(signal, lambda x: _nk().signal_filter(
        x, sampling_rate=signal.fs, method="powerline", powerline=freq))
    return signal.with_data(data, note=f"powerline {freq} Hz removed")


def windows(signal: Signal, seconds: float, overlap: float = 0.0) -> list[Signal]:
    """Fixed-length windows (each a Signal with its start and annotations); the last one ends at the end."""
    return [signal.samples(lo, lo + size) for lo, size in _window_bounds(signal, seconds, overlap)]


def window_array(signal: Signal, seconds: float, overlap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The same windows stacked (n_windows, n_samples, n_channels), with each window's start in seconds."""
    bounds = _window_bounds(signal, seconds, overlap)
    stack = np.stack([signal.data[lo:lo + size] for lo, size in bounds])
    return stack, np.array([lo / signal.fs for lo, _ in bounds])


def _window_bounds(signal: Signal, seconds: float, overlap: float) -> list[tuple[int, int]]:
    """(first sample, length) of each window; too short a recording is refused naming it."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"window length must be > 0 s, got {seconds!r}")
    if not (0.0 <= overlap < 1.0):
        raise ConfigError(f"window overlap must be a fraction in [0, 1), got {overlap!r}")
    size = max(1, int(round(seconds * signal.fs)))
    if signal.n_samples < size:
        raise CorruptDataError(f"{signal.source or 'signal'}: {signal.duration_s:g} s is shorter than one "
                               f"{seconds:g} s window ({signal.n_samples} < {size} samples)")
    step = max(1, int(round(size * (1.0 - overlap))))
    starts = list(range(0, signal.n_samples - size + 1, step))
    if starts[-1] + size < signal.n_samples:
        starts.append(signal.n_samples - size)
    return [(lo, size) for lo in starts]


def _check_band(signal: Signal, low: float | None, high: float | None) -> None:
    """Cut-offs inside (0, Nyquist) and in order, or a clear error naming the recording."""
    nyquist = signal.fs / 2
    where = signal.source or "signal"
    if low is None and high is None:
        raise ConfigError(f"{where}: band-pass needs a low or a high cut-off")
    for name, f in (("low", low), ("high", high)):
        if f is not None and not (0 < f < nyquist):
            raise ConfigError(f"{where}: {name} cut-off {f} Hz must lie in (0, {nyquist:g}) Hz (half of fs)")
    if low is not None and high is not None and low >= high:
        raise ConfigError(f"{where}: low cut-off {low} Hz must be below the high cut-off {high} Hz")


def _per_channel(signal: Signal, fn) -> np.ndarray:
    """Apply a 1-D function to each channel, quietly (neurokit2 warns on ordinary inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cols = [np.asarray(fn(signal.data[:, i]), dtype=np.float64) for i in range(signal.n_channels)]
    return np.column_stack(cols) if cols else signal.data.copy()


def _nk():
    """neurokit2, imported on first use (it is slow to import)."""
    import neurokit2

    return neurokit2


# ---------------------------------------------------------------- one channel


def clean_ecg(x: np.ndarray, fs: float, method: str = "neurokit") -> np.ndarray:
    """Baseline wander and noise removed the way the chosen detector expects (nk.ecg_clean)."""
    if method not in CLEAN_METHODS:
        raise ConfigError(f"unknown ECG cleaning method {method!r}; choose one of {list(CLEAN_METHODS)}")
    x = _fill_nan(_one_channel(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(_nk().ecg_clean(x, sampling_rate=fs, method=method), dtype=np.float64)


def searchback(primary: np.ndarray, secondary: np.ndarray, fs: float) -> np.ndarray:
    """Pan & Tompkins's searchback with a second detector: where two consecutive `primary` peaks
    lie more than `SEARCHBACK_FACTOR` times the mean of the last `SEARCHBACK_BEATS` RR intervals
    apart, the `secondary` peaks inside that gap (at least `REFRACTORY_S` from its ends and from
    each other) are added. Returns the merged, sorted peaks."""
    primary = np.sort(np.asarray(primary, dtype=np.int64))
    secondary = np.sort(np.asarray(secondary, dtype=np.int64))
    refractory = int(round(REFRACTORY_S * fs))
    added: list[int] = []
    for i in range(2, len(primary)):
        recent = np.diff(primary[max(0, i - SEARCHBACK_BEATS):i])
        start, stop = primary[i - 1], primary[i]
        if stop - start <= SEARCHBACK_FACTOR * recent.mean():
            continue
        last = start
        for peak in secondary[(secondary > start + refractory) & (secondary < stop - refractory)]:
            if peak - last > refractory:
                added.append(int(peak))
                last = peak
    return np.sort(np.concatenate([primary, np.asarray(added, dtype=np.int64)]))


def detect_rpeaks(x: np.ndarray, fs: float, method: str = "neurokit", clean: bool = True) -> np.ndarray:
    """R-peak sample indices (nk.ecg_peaks); a flat or mostly-NaN channel has none. `searchback`
    is `manikandan2012` with its long gaps searched again by `neurokit` (`searchback()`)."""
    if method not in RPEAK_METHODS:
        raise ConfigError(f"unknown R-peak method {method!r}; choose one of {list(RPEAK_METHODS)}")
    if method in SEARCHBACK:
        primary, secondary = SEARCHBACK[method]
        return searchback(detect_rpeaks(x, fs, primary, clean), detect_rpeaks(x, fs, secondary, clean),
                          fs)
    x = _one_channel(x)
    if _unusable(x):
        return np.empty(0, dtype=np.int64)
    if clean:
        x = clean_ecg(x, fs, method=method if method in CLEAN_METHODS else "neurokit")
    try:
        with _quiet():
            _, info = _nk().ecg_peaks(x, sampling_rate=fs, method=method, correct_artifacts=False)
    except Exception as e:  # neurokit2 raises bare errors on short inputs
        raise CorruptDataError(f"R-peak detection ({method}) failed on {len(x)} samples at {fs:g} Hz "
                               f"({type(e).__name__}: {e})") from e
    return np.unique(np.asarray(info["ECG_R_Peaks"], dtype=np.int64))


def heart_rate(rpeaks: np.ndarray, fs: float) -> dict[str, float | str]:
    """Mean, min and max heart rate (bpm) from beat-to-beat intervals; NaN with a reason under 2 beats."""
    rr = np.diff(np.sort(np.asarray(rpeaks, dtype=np.float64))) / fs
    if rr.size == 0 or not np.all(rr > 0):
        nan = float("nan")
        return {"mean_bpm": nan, "min_bpm": nan, "max_bpm": nan, "n_beats": float(len(rpeaks)),
                "reason": f"needs at least 2 distinct R-peaks, got {len(rpeaks)}"}
    bpm = 60.0 / rr
    return {"mean_bpm": float(60.0 / rr.mean()), "min_bpm": float(bpm.min()), "max_bpm": float(bpm.max()),
            "n_beats": float(len(rpeaks)), "reason": ""}


def hrv(rpeaks: np.ndarray, fs: float) -> dict[str, float | str]:
    """Time-domain (MeanNN, SDNN, RMSSD in ms, pNN50 in %) and frequency-domain (LF, HF in ms^2, LF/HF)
    heart-rate variability (nk.hrv_time, nk.hrv_frequency); NaN with a reason where beats are too few."""
    peaks = np.unique(np.asarray(rpeaks, dtype=np.int64))
    out: dict[str, float | str] = dict.fromkeys(("MeanNN", "SDNN", "RMSSD", "pNN50", "LF", "HF", "LFHF"),
                                                float("nan"))
    reasons: list[str] = []
    if len(peaks) < HRV_MIN_PEAKS:
        out["reason"] = f"HRV needs at least {HRV_MIN_PEAKS} R-peaks, got {len(peaks)}"
        return out
    span = (peaks[-1] - peaks[0]) / fs
    with _quiet():
        t = _nk().hrv_time(peaks, sampling_rate=fs)
        out.update({k: float(t[f"HRV_{k}"].iloc[0]) for k in ("MeanNN", "SDNN", "RMSSD", "pNN50")})
        if span >= HF_MIN_SECONDS:
            f = _nk().hrv_frequency(peaks, sampling_rate=fs)
            out["HF"] = float(f["HRV_HF"].iloc[0])
            if span >= LF_MIN_SECONDS:
                out["LF"], out["LFHF"] = float(f["HRV_LF"].iloc[0]), float(f["HRV_LFHF"].iloc[0])
    if span < HF_MIN_SECONDS:
        reasons.append(f"HF needs {HF_MIN_SECONDS:g} s of beats, got {span:.1f} s")
    if span < LF_MIN_SECONDS:
        reasons.append(f"LF and LF/HF need {LF_MIN_SECONDS:g} s of beats, got {span:.1f} s")
    out["reason"] = "; ".join(reasons)
    return out


def signal_quality(x: np.ndarray, fs: float, method: str = "averageQRS",
                   rpeaks: np.ndarray | None = None) -> float:
    """Mean ECG quality (nk.ecg_quality with `method`, one of `QUALITY_METHODS`; R-peaks found on
    the cleaned channel may be passed in); 0.0 when flat, NaN or beatless."""
    if method not in QUALITY_METHODS:
        raise ConfigError(f"unknown ECG quality method {method!r}; choose one of {list(QUALITY_METHODS)}")
    x = _one_channel(x)
    if _unusable(x):
        return 0.0
    cleaned = clean_ecg(x, fs)
    try:
        with _quiet():
            q = _nk().ecg_quality(cleaned, rpeaks=rpeaks, sampling_rate=fs, method=method)
    except Exception:  # neurokit2 fails on inputs with too few beats to build a template
        return 0.0
    q = np.asarray(q, dtype=np.float64)
    return float(np.nanmean(q)) if np.isfinite(q).any() else 0.0


def ecg_reading(x: np.ndarray, fs: float) -> dict[str, Any]:
    """What a reader takes off one ECG channel: R-peaks (samples), their count, heart rate in bpm
    (mean, min, max; None when unreadable) and quality {"index", "label", "method"} (see the module
    notes for the labels). A flat, short or beatless channel is labelled, never an error."""
    x = _one_channel(x)
    peaks, reason = np.empty(0, dtype=np.int64), ""
    if _unusable(x):
        reason = "flat, empty or mostly missing"
    elif len(x) < MIN_READING_S * fs:
        reason = f"{len(x) / fs:.2g} s long, under {MIN_READING_S:g} s"
    else:
        try:
            peaks = detect_rpeaks(clean_ecg(x, fs), fs, clean=False)
        except CorruptDataError as e:
            reason = str(e)
    rate = heart_rate(peaks, fs)
    if not reason and len(peaks) < 2:
        reason = str(rate["reason"])
    index = 0.0 if reason else signal_quality(x, fs, method="templatematch", rpeaks=peaks)
    label = "unreadable" if reason else "good" if index >= GOOD_QUALITY else "poor"
    bpm = None if reason else {k: round(float(rate[f"{k}_bpm"]), 1) for k in ("mean", "min", "max")}
    return {"rpeaks": peaks, "n_beats": int(len(peaks)), "heart_rate_bpm": bpm,
            "quality": {"index": round(index, 3), "label": label, "method": "templatematch",
                        **({"reason": reason} if reason else {})}}


def ppg_peaks(x: np.ndarray, fs: float, method: str = "elgendi") -> np.ndarray:
    """Systolic peak sample indices of a PPG (nk.ppg_clean then nk.ppg_peaks); none when flat or NaN."""
    x = _one_channel(x)
    if _unusable(x):
        return np.empty(0, dtype=np.int64)
    try:
        with _quiet():
            cleaned = _nk().ppg_clean(_fill_nan(x), sampling_rate=fs)
            _, info = _nk().ppg_peaks(cleaned, sampling_rate=fs, method=method)
    except Exception as e:
        raise CorruptDataError(f"PPG peak detection ({method}) failed on {len(x)} samples at {fs:g} Hz "
                               f"({type(e).__name__}: {e})") from e
    return np.unique(np.asarray(info["PPG_Peaks"], dtype=np.int64))


def _one_channel(x: np.ndarray) -> np.ndarray:
    """A 1-D float array; a (n, 1) column is accepted, several channels are refused."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ConfigError(f"expected one channel (a 1-D array), got shape {x.shape}; pick one with "
                          "Signal.channel(name)")
    return x


def _unusable(x: np.ndarray, max_nan_fraction: float = 0.5) -> bool:
    """True when a channel is empty, mostly NaN or flat: nothing to detect in it."""
    finite = np.isfinite(x)
    return x.size == 0 or finite.mean() < 1 - max_nan_fraction or np.ptp(x[finite]) == 0


def _fill_nan(x: np.ndarray) -> np.ndarray:
    """Isolated NaNs linearly interpolated from their finite neighbours (filters cannot take NaN)."""
    bad = ~np.isfinite(x)
    if not bad.any() or bad.all():
        return x
    idx = np.arange(x.size)
    out = x.copy()
    out[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return out


@contextlib.contextmanager
def _quiet():
    """Silence neurokit2's warnings and the prints some of its detectors make."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
