"""ECG preparation for the signal models: one path from a recording's samples to a network's input
(per-record standardisation, a fixed-length window, training augmentation) or to a row of rhythm
features (R-peaks -> RR statistics, heart rate, beat-template agreement).

Task inputs are one 1-D float array per recording at the task's rate, of any length; each model
decides how much of it to use:
- networks see a window of `length_s` seconds (default 30 s): the first `length_s` seconds at
  inference, a random window of that length when training on a longer recording; shorter
  recordings are zero-padded at the end (zero is the record's mean after standardisation);
- the feature models read the whole recording.
Standardisation (mean 0, SD 1 over the whole recording, NaN -> 0) happens here, not in the
task, so new files given to `predict` go through the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from iatros.data.transforms import settings_from_dict
from iatros.errors import ConfigError, IatrosError

FS = 300.0
LENGTH_S = 30.0


def as_record(values: Any) -> np.ndarray:
    """One recording as a 1-D float32 array (a single-channel (n, 1) array is flattened)."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ConfigError(f"expected one single-lead recording (n_samples,), got shape {x.shape}")
    return x


def standardise(values: Any) -> np.ndarray:
    """Mean 0 and SD 1 over the recording; NaN samples become 0 (the mean); a flat record all 0."""
    x = as_record(values)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros_like(x)
    mean, sd = float(x[finite].mean()), float(x[finite].std())
    out = (x - mean) / sd if sd > 1e-8 else x - mean
    return np.where(finite, out, 0.0).astype(np.float32)


def fit_length(x: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """`n` samples from `start`, zero-padded at the end when the recording is shorter."""
    window = x[start:start + n]
    if len(window) < n:
        window = np.concatenate([window, np.zeros(n - len(window), dtype=x.dtype)])
    return window


@dataclass(frozen=True)
class SignalAugment:
    """Training augmentation: a random window of a longer record (`crop`), amplitude scaling by a
    factor drawn from [1 - scale, 1 + scale], optional Gaussian noise (in SDs of the record)."""

    crop: bool = True
    scale: float = 0.2
    noise_std: float = 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> SignalAugment:
        return settings_from_dict(cls, values, "signal augmentation")


class SignalDataset(Dataset):
    """Recordings (an object array of 1-D arrays, or an (N, n_samples) array) as (1, length)
    float tensors, standardised per record, augmented when `augment` is given.

    Random draws come from torch's generator, which checkpoints save and resume restores, so a
    resumed run replays the same augmentations."""

    def __init__(self, records: Any, targets: Any, *, length: int, target_dtype: torch.dtype,
                 augment: SignalAugment | None = None) -> None:
        self.records, self.targets = records, np.asarray(targets)
        self.length, self.target_dtype, self.augment = int(length), target_dtype, augment
        if self.length < 1:
            raise ConfigError(f"signal window must hold at least one sample, not {length}")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            x = standardise(self.records[i])
        except ConfigError as e:
            raise ConfigError(f"recording {i}: {e}") from e
        start = 0
        if self.augment is not None and self.augment.crop and len(x) > self.length:
            start = int(torch.randint(0, len(x) - self.length + 1, (1,)))
        x = fit_length(x, self.length, start)
        if self.augment is not None:
            if self.augment.scale:
                x = x * float(1 + self.augment.scale * (2 * torch.rand(1) - 1))
            if self.augment.noise_std:
                x = x + self.augment.noise_std * torch.randn(len(x)).numpy()
        return (torch.as_tensor(np.asarray(x, dtype=np.float32)).unsqueeze(0),
                torch.as_tensor(np.asarray(self.targets[i]), dtype=self.target_dtype))


def signal_dataset(inputs: Any, targets: Any, kind: Any, train: bool = False,
                   params: dict[str, Any] | None = None) -> SignalDataset:
    """The `ModelSpec.dataset` of signal networks: windows of `length_s` seconds at `fs` Hz."""
    params = params or {}
    length = int(round(float(params.get("length_s", LENGTH_S)) * float(params.get("fs", FS))))
    dtype = torch.long if kind.class_indices else torch.float32
    augment = SignalAugment.from_dict(params.get("augment")) if train else None
    return SignalDataset(inputs, targets, length=length, target_dtype=dtype, augment=augment)


# Rhythm features of one recording, in this order (NaN where undefined: too few beats).
RHYTHM_FEATURES = (
    "n_beats_per_min", "hr_mean_bpm", "hr_min_bpm", "hr_max_bpm",
    "rr_mean_ms", "rr_sdnn_ms", "rr_rmssd_ms", "rr_pnn50", "rr_cv", "rr_median_ms", "rr_iqr_ms",
    "rr_min_ms", "rr_max_ms", "drr_median_abs_ms", "drr_cv", "rr_turning_fraction",
    "rr_sample_entropy", "rr_irregular_fraction", "beat_corr_mean", "beat_corr_p10",
    "r_amplitude_cv", "duration_s",
)
BEAT_HALF_WIDTH_S = 0.25


def sample_entropy(values: np.ndarray, m: int = 2, r: float = 0.2) -> float:
    """Sample entropy of a short series (neurokit2's, tolerance r x its SD); NaN when too short
    or undefined (no matching templates)."""
    import neurokit2 as nk

    x = np.asarray(values, dtype=np.float64)
    if len(x) < m + 2 or not np.isfinite(x).all() or x.std() <= 0:
        return float("nan")
    value = float(nk.entropy_sample(x, dimension=m, tolerance=r * x.std())[0])
    return value if np.isfinite(value) else float("nan")


def beat_agreement(cleaned: np.ndarray, peaks: np.ndarray, fs: float) -> tuple[float, float, float]:
    """Signal quality and morphology from the beats: correlation of each beat (R +- 0.25 s) with
    the median beat (mean, 10th percentile) and the coefficient of variation of R amplitudes.

    The same idea as neurokit2's averageQRS quality, computed from the peaks already found (that
    function costs ten times the R-peak detection)."""
    half = int(round(BEAT_HALF_WIDTH_S * fs))
    inside = peaks[(peaks >= half) & (peaks < len(cleaned) - half)]
    if len(inside) < 3:
        return float("nan"), float("nan"), float("nan")
    beats = np.stack([cleaned[p - half:p + half] for p in inside])
    template = np.median(beats, axis=0)
    centred = beats - beats.mean(axis=1, keepdims=True)
    t = template - template.mean()
    denom = np.linalg.norm(centred, axis=1) * np.linalg.norm(t)
    corr = np.where(denom > 0, centred @ t / np.where(denom > 0, denom, 1.0), 0.0)
    amps = cleaned[inside]
    amp_cv = float(amps.std() / abs(amps.mean())) if abs(amps.mean()) > 1e-9 else float("nan")
    return float(corr.mean()), float(np.percentile(corr, 10)), amp_cv


def rhythm_features(values: Any, fs: float = FS) -> np.ndarray:
    """One recording -> `RHYTHM_FEATURES` from R-peaks detected by `data.signals.processing`."""
    from iatros.data.signals.processing import clean_ecg, detect_rpeaks, heart_rate, hrv

    x = standardise(values).astype(np.float64)
    out = dict.fromkeys(RHYTHM_FEATURES, float("nan"))
    out["duration_s"] = len(x) / fs
    if len(x) < 2 * fs:
        return np.array([out[k] for k in RHYTHM_FEATURES])
    try:
        cleaned = clean_ecg(x, fs)
        peaks = detect_rpeaks(cleaned, fs, clean=False)
    except IatrosError:
        return np.array([out[k] for k in RHYTHM_FEATURES])
    out["n_beats_per_min"] = 60.0 * len(peaks) / out["duration_s"]
    out["beat_corr_mean"], out["beat_corr_p10"], out["r_amplitude_cv"] = beat_agreement(
        cleaned, peaks, fs)
    rate = heart_rate(peaks, fs)
    out.update(hr_mean_bpm=rate["mean_bpm"], hr_min_bpm=rate["min_bpm"], hr_max_bpm=rate["max_bpm"])
    variability = hrv(peaks, fs)
    out.update(rr_mean_ms=variability["MeanNN"], rr_sdnn_ms=variability["SDNN"],
               rr_rmssd_ms=variability["RMSSD"], rr_pnn50=variability["pNN50"])
    rr = np.diff(np.sort(peaks)) / fs * 1000.0
    if len(rr) >= 3:
        drr = np.diff(rr)
        q1, median, q3 = np.percentile(rr, [25, 50, 75])
        out.update(rr_cv=rr.std() / rr.mean(), rr_median_ms=median, rr_iqr_ms=q3 - q1,
                   rr_min_ms=rr.min(), rr_max_ms=rr.max(),
                   drr_median_abs_ms=float(np.median(np.abs(drr))),
                   drr_cv=float(np.abs(drr).mean() / rr.mean()),
                   rr_irregular_fraction=float(np.mean(np.abs(drr) > 0.1 * median)),
                   rr_sample_entropy=sample_entropy(rr))
        if len(drr) >= 2:
            out["rr_turning_fraction"] = float(np.mean(drr[1:] * drr[:-1] < 0))
    return np.array([float(out[k]) for k in RHYTHM_FEATURES])


def rhythm_feature_matrix(records: Any, fs: float = FS) -> np.ndarray:
    """(N, len(RHYTHM_FEATURES)) for N recordings (an object array of 1-D arrays or a 2-D array)."""
    return np.array([rhythm_features(r, fs) for r in records], dtype=np.float64).reshape(
        len(records), len(RHYTHM_FEATURES))
