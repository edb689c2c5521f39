"""Physiological signals (ECG, PPG): one `Signal` shape, readers for WFDB / EDF / CSV / DICOM waveforms,
and processing through maintained libraries (neurokit2, scipy.signal)."""

from __future__ import annotations

from iatros.data.signals.processing import (
    RPEAK_METHODS,
    bandpass,
    clean_ecg,
    detect_rpeaks,
    heart_rate,
    hrv,
    powerline,
    ppg_peaks,
    resample,
    signal_quality,
    window_array,
    windows,
)
from iatros.data.signals.readers import read_annotations, read_signal
from iatros.data.signals.record import Annotation, Signal, channel_problems

__all__ = [
    "RPEAK_METHODS", "Annotation", "Signal", "bandpass", "channel_problems", "clean_ecg", "detect_rpeaks",
    "heart_rate", "hrv", "powerline", "ppg_peaks", "read_annotations", "read_signal", "resample",
    "signal_quality", "window_array", "windows",
]
