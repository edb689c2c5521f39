"""Signal processing on real MIT-BIH segments: resampling, filters, R-peaks against the reference
annotations, heart rate and HRV, quality, windows (with hypothesis over lengths and overlaps)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iatros.data.signals import Annotation, Signal, read_signal
from iatros.data.signals.processing import (
    RPEAK_METHODS,
    bandpass,
    clean_ecg,
    detect_rpeaks,
    ecg_reading,
    heart_rate,
    hrv,
    powerline,
    ppg_peaks,
    resample,
    signal_quality,
    window_array,
    windows,
)
from iatros.errors import ConfigError, CorruptDataError

BEATS = set("NLRBAaJSVrFejnE/fQ?")


@pytest.fixture(scope="module")
def record100(shared_data_module):
    """The first 150 s of MIT-BIH record 100 with its reference beat annotations."""
    path = shared_data_module / "mitbih_arrhythmia" / "record100_wfdb" / "100"
    return read_signal(path, annotations="atr").slice(0, 150)


def _reference_beats(signal: Signal) -> np.ndarray:
    return np.array([a.sample for a in signal.annotations if a.symbol in BEATS])


def _share_found(found: np.ndarray, reference: np.ndarray, tolerance: int) -> float:
    if found.size == 0:
        return 0.0
    return float((np.abs(reference[:, None] - found[None, :]).min(axis=1) <= tolerance).mean())


def test_resample_keeps_duration_and_moves_annotations(record100):
    seg = record100.slice(0, 30)
    down = resample(seg, 250)
    assert down.fs == 250 and down.n_samples == 7500 and down.duration_s == pytest.approx(seg.duration_s)
    first = _reference_beats(seg)[0]
    assert _reference_beats(down)[0] == round(first * 250 / 360)
    assert np.corrcoef(down.channel(0)[::25], seg.channel(0)[::36])[0, 1] > 0.9
    assert resample(seg, 360).n_samples == seg.n_samples


def test_resample_refuses_a_bad_rate(record100):
    with pytest.raises(ConfigError, match="> 0 Hz"):
        resample(record100, 0)


def test_bandpass_removes_a_low_frequency_drift_added_to_a_real_segment(record100):
    seg = record100.slice(0, 30)
    drift = 2.0 * np.sin(2 * np.pi * 0.1 * seg.time)
    drifted = seg.with_data(seg.data + drift[:, None])
    clean_ref = bandpass(seg, 0.5, 40).channel(0)
    out = bandpass(drifted, 0.5, 40).channel(0)
    inner = slice(360, -360)  # edges of a filtered segment are not the point
    assert np.std(out[inner] - clean_ref[inner]) < 0.05 * np.std(drift)
    assert abs(np.corrcoef(out, drift)[0, 1]) < 0.05
    assert "band-pass" in bandpass(seg, 0.5, None).notes[-1]


@pytest.mark.parametrize(("low", "high"), [(None, None), (0, 40), (0.5, 200), (40, 0.5)])
def test_bandpass_refuses_cutoffs_outside_the_band(record100, low, high):
    with pytest.raises(ConfigError):
        bandpass(record100, low, high)


def test_powerline_removes_60_hz_hum(record100):
    seg = record100.slice(0, 20)
    hum = 0.3 * np.sin(2 * np.pi * 60 * seg.time)
    out = powerline(seg.with_data(seg.data + hum[:, None]), 60).channel(0)
    spectrum = np.abs(np.fft.rfft(out - out.mean()))
    freqs = np.fft.rfftfreq(out.size, 1 / seg.fs)
    assert spectrum[np.argmin(np.abs(freqs - 60))] < 0.01 * np.abs(np.fft.rfft(hum)).max()
    with pytest.raises(ConfigError, match="50, 60"):
        powerline(seg, 55)


def test_detect_rpeaks_on_30_s_of_record_100_matches_reference_within_150_ms(record100):
    seg = record100.slice(0, 30)
    found = detect_rpeaks(seg.channel("MLII"), seg.fs)
    reference = _reference_beats(seg)
    assert _share_found(found, reference, int(0.150 * seg.fs)) >= 0.95
    assert abs(len(found) - len(reference)) <= 2


@pytest.mark.parametrize("method", RPEAK_METHODS)
def test_every_listed_rpeak_method_runs_offline_and_finds_the_beats(record100, method):
    seg = record100.slice(0, 30)
    found = detect_rpeaks(seg.channel(0), seg.fs, method=method)
    assert _share_found(found, _reference_beats(seg), int(0.150 * seg.fs)) >= 0.9


def test_detect_rpeaks_refuses_unknown_method_and_finds_nothing_in_a_flat_channel():
    with pytest.raises(ConfigError, match="unknown R-peak method"):
        detect_rpeaks(np.zeros(1000), 360, method="magic")
    assert detect_rpeaks(np.zeros(3600), 360).size == 0
    assert detect_rpeaks(np.full(3600, np.nan), 360).size == 0
    with pytest.raises(ConfigError, match="one channel"):
        detect_rpeaks(np.zeros((100, 2)), 360)


def test_heart_rate_of_record_100_is_plausible_and_too_few_beats_give_a_reason(record100):
    seg = record100.slice(0, 60)
    hr = heart_rate(detect_rpeaks(seg.channel(0), seg.fs), seg.fs)
    assert 60 < hr["mean_bpm"] < 90 and hr["min_bpm"] <= hr["mean_bpm"] <= hr["max_bpm"]
    assert hr["reason"] == ""
    few = heart_rate(np.array([10]), 360)
    assert np.isnan(few["mean_bpm"]) and "at least 2" in few["reason"]


def test_hrv_on_a_real_minute_gives_finite_time_domain_and_hf(record100):
    seg = record100.slice(0, 65)
    out = hrv(detect_rpeaks(seg.channel(0), seg.fs), seg.fs)
    for key in ("MeanNN", "SDNN", "RMSSD", "pNN50", "HF"):
        assert np.isfinite(out[key]), key
    assert 650 < out["MeanNN"] < 1000 and out["SDNN"] > 0
    assert np.isnan(out["LF"]) and "LF and LF/HF need" in out["reason"]


def test_hrv_on_two_and_a_half_minutes_gives_lf_hf_ratio(record100):
    out = hrv(detect_rpeaks(record100.channel(0), record100.fs), record100.fs)
    assert out["reason"] == "" and out["LF"] > 0 and out["HF"] > 0
    assert out["LFHF"] == pytest.approx(out["LF"] / out["HF"], rel=1e-6)


def test_hrv_with_too_few_beats_is_nan_with_a_reason():
    out = hrv(np.array([100, 400, 700]), 360)
    assert all(np.isnan(out[k]) for k in ("MeanNN", "SDNN", "RMSSD", "LF"))
    assert "at least 5 R-peaks, got 3" in out["reason"]


def test_signal_quality_is_high_on_clean_ecg_and_zero_on_flat_or_noise(record100):
    seg = record100.slice(0, 30)
    good = signal_quality(seg.channel(0), seg.fs)
    assert 0.5 < good <= 1.0
    assert signal_quality(np.zeros(seg.n_samples), seg.fs) == 0.0
    assert signal_quality(np.full(seg.n_samples, np.nan), seg.fs) == 0.0
    noise = np.random.default_rng(0).normal(size=seg.n_samples)
    assert signal_quality(noise, seg.fs) < good


def test_templatematch_quality_is_near_one_on_clean_ecg_and_unknown_methods_are_refused(record100):
    seg = record100.slice(0, 30)
    assert signal_quality(seg.channel(0), seg.fs, method="templatematch") > 0.9
    with pytest.raises(ConfigError, match="quality method"):
        signal_quality(seg.channel(0), seg.fs, method="zhao2018")


def test_ecg_reading_of_a_real_minute_matches_the_reference_beats(record100):
    seg = record100.slice(0, 60)
    beats = _reference_beats(seg)
    reading = ecg_reading(seg.channel(0), seg.fs)
    assert reading["heart_rate_bpm"]["mean"] == pytest.approx(60 / np.mean(np.diff(beats) / seg.fs), abs=2)
    assert abs(reading["n_beats"] - len(beats)) <= 2 and len(reading["rpeaks"]) == reading["n_beats"]
    assert reading["quality"]["label"] == "good" and reading["quality"]["index"] >= 0.66


@pytest.mark.parametrize(("make", "reason"), [
    (lambda n: np.zeros(n), "flat"),
    (lambda n: np.full(n, np.nan), "mostly missing"),
    (lambda n: np.sin(np.arange(n // 20)), "under 2 s"),
])
def test_ecg_reading_labels_flat_missing_or_short_channels_unreadable(record100, make, reason):
    reading = ecg_reading(make(int(record100.fs * 20)), record100.fs)
    assert reading["heart_rate_bpm"] is None and reading["n_beats"] == 0
    assert reading["quality"]["label"] == "unreadable" and reason in reading["quality"]["reason"]


def test_ecg_reading_of_noise_is_poor(record100):
    noise = np.random.default_rng(0).normal(size=int(record100.fs * 30))
    assert ecg_reading(noise, record100.fs)["quality"]["label"] == "poor"


def test_clean_ecg_keeps_length_and_fills_isolated_nans(record100):
    x = record100.slice(0, 10).channel(0).copy()
    x[100] = np.nan
    out = clean_ecg(x, record100.fs)
    assert out.shape == x.shape and np.isfinite(out).all()
    with pytest.raises(ConfigError, match="cleaning method"):
        clean_ecg(x, record100.fs, method="magic")


def test_ppg_peaks_on_simulated_ppg_match_its_heart_rate():
    nk = pytest.importorskip("neurokit2")
    fs, seconds, bpm = 100, 30, 72
    ppg = nk.ppg_simulate(duration=seconds, sampling_rate=fs, heart_rate=bpm, random_state=3)
    peaks = ppg_peaks(ppg, fs)
    assert abs(len(peaks) - seconds * bpm / 60) <= 2
    assert heart_rate(peaks, fs)["mean_bpm"] == pytest.approx(bpm, abs=3)
    assert ppg_peaks(np.zeros(3000), fs).size == 0


def test_windows_with_overlap_count_and_starts(record100):
    seg = record100.slice(0, 30)
    assert len(windows(seg, 10)) == 3
    halves = windows(seg, 10, overlap=0.5)
    assert len(halves) == 5 and all(w.n_samples == 3600 for w in halves)
    stack, starts = window_array(seg, 10, overlap=0.5)
    assert stack.shape == (5, 3600, 2)
    np.testing.assert_allclose(starts, [0, 5, 10, 15, 20])
    np.testing.assert_array_equal(stack[1], halves[1].data)
    beats = [a for w in windows(seg, 10) for a in w.annotations if a.symbol in BEATS]
    assert len(beats) == len(_reference_beats(seg))


def test_windows_align_the_last_window_to_the_end(record100):
    seg = record100.slice(0, 25)
    parts = windows(seg, 10)
    assert len(parts) == 3 and np.array_equal(parts[-1].data, seg.data[-3600:])


def test_recording_shorter_than_one_window_is_refused_naming_it(record100):
    short = record100.slice(0, 5)
    with pytest.raises(CorruptDataError, match=r"100.*shorter than one 10 s window"):
        windows(short, 10)
    with pytest.raises(ConfigError, match="overlap"):
        windows(record100, 10, overlap=1.0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 400), fs=st.sampled_from([1.0, 7.5, 100.0, 360.0]),
       seconds=st.floats(0.001, 5.0), overlap=st.floats(0.0, 0.99))
def test_windows_over_random_lengths_cover_the_signal_or_refuse_cleanly(n, fs, seconds, overlap):
    data = np.arange(n, dtype=np.float64)
    s = Signal(data=data, fs=fs, channels=["x"], units=[""], source="random",
               annotations=[Annotation(i, "N") for i in range(0, n, 7)])
    try:
        parts = windows(s, seconds, overlap)
    except CorruptDataError as e:
        assert n < max(1, round(seconds * fs)) and "shorter than one" in str(e)
        return
    size = max(1, round(seconds * fs))
    covered = np.zeros(n, dtype=bool)
    for w in parts:
        assert w.n_samples == size and w.fs == fs
        first = int(w.data[0, 0])
        np.testing.assert_array_equal(w.data[:, 0], data[first:first + size])
        covered[first:first + size] = True
        assert all(0 <= a.sample < size for a in w.annotations)
    assert covered.all()
