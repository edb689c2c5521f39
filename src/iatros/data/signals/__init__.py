"""Physiological signals (ECG, PPG): one `Signal` shape, readers for WFDB / EDF / CSV / DICOM waveforms,
and processing through maintained libraries (neurokit2, scipy.signal)."""

from __future__ import annotations

from iatros.data.signals.readers import read_annotations, read_signal
from iatros.data.signals.record import Annotation, Signal, channel_problems

__all__ = ["Annotation", "Signal", "channel_problems", "read_annotations", "read_signal"]
