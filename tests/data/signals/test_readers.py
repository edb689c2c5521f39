"""Signal readers on real files (MIT-BIH WFDB, PhysioNet 2017 .mat, pydicom's ECG) and on damaged copies."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from iatros.data.signals import Annotation, Signal, channel_problems, read_annotations, read_signal
from iatros.errors import ConfigError, CorruptDataError, MissingDataError


def _mitdb(root: Path) -> Path:
    return root / "mitbih_arrhythmia" / "mitdb"


def _copy_record(src: Path, name: str, dest: Path) -> Path:
    for f in src.glob(f"{name}.*"):
        shutil.copy(f, dest / f.name)
    return dest / name


# ---------------------------------------------------------------- real WFDB records


def test_mitbih_record_100_reads_two_channels_at_360_hz_in_mv_with_annotations(shared_data):
    s = read_signal(shared_data / "mitbih_arrhythmia" / "record100_wfdb" / "100.hea", annotations="atr")
    assert s.data.shape == (650000, 2) and s.data.dtype == np.float64
    assert s.fs == 360.0 and s.channels == ["MLII", "V5"] and s.units == ["mV", "mV"]
    assert abs(s.duration_s - 650000 / 360) < 1e-9
    beats = [a for a in s.annotations if a.symbol == "N"]
    assert len(beats) > 2000 and all(0 <= a.sample < s.n_samples for a in s.annotations)
    assert np.nanmax(np.abs(s.data)) < 10  # physical units (mV), not ADC counts
    assert s.problems() == []


@pytest.mark.parametrize("suffix", ["", ".hea", ".dat"])
def test_mitbih_record_101_reads_from_name_header_or_dat(shared_data, suffix):
    s = read_signal(_mitdb(shared_data) / f"101{suffix}")
    assert s.data.shape == (650000, 2) and s.fs == 360.0 and s.channels == ["MLII", "V1"]


def test_channels_selects_by_name_and_keeps_every_annotation(shared_data):
    s = read_signal(_mitdb(shared_data) / "101", channels=["V1"], annotations="atr")
    full = read_signal(_mitdb(shared_data) / "101", annotations="atr")
    assert s.channels == ["V1"] and s.data.shape == (650000, 1)
    np.testing.assert_array_equal(s.channel("V1"), full.channel(1))
    assert s.annotations == full.annotations and len(s.annotations) > 1800
    assert full.select([1, "MLII"]).channels == ["V1", "MLII"]


def test_unknown_channel_is_refused_listing_the_channels_there_are(shared_data):
    with pytest.raises(ConfigError, match=r"101.*'II'.*MLII"):
        read_signal(_mitdb(shared_data) / "101", channels=["II"])


def test_read_annotations_gives_rhythm_changes_with_aux(shared_data):
    notes = read_annotations(_mitdb(shared_data) / "203", extension="atr")
    assert all(isinstance(a, Annotation) for a in notes)
    rhythms = {a.aux for a in notes if a.symbol == "+"}
    assert "(AFL" in rhythms or "(AFIB" in rhythms


def test_physionet_2017_mat_reads_at_300_hz_single_lead(shared_data):
    s = read_signal(shared_data / "physionet2017_af" / "validation" / "A00001.mat")
    assert s.fs == 300.0 and s.channels == ["ECG"] and s.units == ["mV"] and s.data.shape == (9000, 1)
    # its header writes the start as '2014-05-08 05:05:15', which wfdb itself cannot parse
    assert s.start == datetime(2014, 5, 8, 5, 5, 15)


def test_physionet_2017_training_record_with_wfdb_start(shared_data):
    s = read_signal(shared_data / "physionet2017_af" / "training2017" / "A00246")
    assert s.fs == 300.0 and s.data.shape == (9000, 1) and s.start == datetime(2000, 5, 1, 10, 5, 14)


# ---------------------------------------------------------------- damaged WFDB records


def test_truncated_dat_is_refused_naming_the_file(shared_data, tmp_path):
    rec = _copy_record(_mitdb(shared_data), "101", tmp_path)
    dat = rec.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:100_001])
    with pytest.raises(CorruptDataError, match=r"101\.dat: truncated.*650000"):
        read_signal(rec)


def test_truncated_mat_is_refused_naming_the_file(shared_data, tmp_path):
    rec = _copy_record(shared_data / "physionet2017_af" / "validation", "A00001", tmp_path)
    mat = rec.with_suffix(".mat")
    mat.write_bytes(mat.read_bytes()[:5000])
    with pytest.raises(CorruptDataError, match=r"A00001\.mat: truncated.*9000"):
        read_signal(rec)


def test_header_naming_a_missing_signal_file_is_refused(shared_data, tmp_path):
    rec = _copy_record(_mitdb(shared_data), "101", tmp_path)
    rec.with_suffix(".dat").unlink()
    with pytest.raises(MissingDataError, match=r"101\.hea.*101\.dat.*missing"):
        read_signal(rec.with_suffix(".hea"))


@pytest.mark.parametrize(("record_line", "expected"), [
    ("101 2", "gives no sampling frequency"),
    ("101 2 0 650000", "must be > 0"),
    ("101 2 -360 650000", "must be > 0"),
    ("101 2 fast 650000", "not a number"),
])
def test_header_without_a_usable_sampling_rate_is_refused(shared_data, tmp_path, record_line, expected):
    rec = _copy_record(_mitdb(shared_data), "101", tmp_path)
    hea = rec.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join([record_line, *lines[1:]]) + "\n")
    with pytest.raises(CorruptDataError, match=f"101.hea.*{expected}"):
        read_signal(rec)


def test_missing_header_and_missing_annotations_are_named(shared_data, tmp_path):
    rec = _copy_record(_mitdb(shared_data), "101", tmp_path)
    with pytest.raises(MissingDataError, match=r"101\.xyz"):
        read_annotations(rec, extension="xyz")
    rec.with_suffix(".hea").unlink()
    with pytest.raises(MissingDataError, match=r"101\.hea"):
        read_signal(rec.with_suffix(".dat"))


def test_unknown_suffix_and_missing_file_are_refused(tmp_path):
    (tmp_path / "beats.xyz").write_text("1,2,3\n")
    with pytest.raises(CorruptDataError, match=r"beats\.xyz.*'\.xyz'"):
        read_signal(tmp_path / "beats.xyz")
    with pytest.raises(MissingDataError, match=r"nothing\.edf"):
        read_signal(tmp_path / "nothing.edf")


# ---------------------------------------------------------------- EDF


def test_edf_round_trip_of_a_real_mitbih_segment(shared_data, tmp_path):
    pyedflib = pytest.importorskip("pyedflib")
    src = read_signal(_mitdb(shared_data) / "101").slice(0, 60)
    path = tmp_path / "seg.edf"
    headers = []
    for name, x in zip(src.channels, src.data.T, strict=True):
        lo, hi = float(np.floor(x.min())) - 1, float(np.ceil(x.max())) + 1
        headers.append({"label": name, "dimension": "mV", "sample_frequency": src.fs, "physical_min": lo,
                        "physical_max": hi, "digital_min": -32768, "digital_max": 32767})
    with pyedflib.EdfWriter(str(path), 2, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders(headers)
        w.writeSamples([np.ascontiguousarray(c) for c in src.data.T])
        w.writeAnnotation(1.0, -1, "start of segment")
    back = read_signal(path)
    assert back.fs == 360.0 and back.channels == ["MLII", "V1"] and back.units == ["mV", "mV"]
    assert back.n_samples == src.n_samples
    for i, h in enumerate(headers):
        resolution = (h["physical_max"] - h["physical_min"]) / (h["digital_max"] - h["digital_min"])
        assert np.max(np.abs(back.data[:, i] - src.data[:, i])) <= resolution
    assert [(a.sample, a.symbol) for a in back.annotations] == [(360, "start of segment")]


def test_edf_channels_at_another_rate_are_resampled_and_noted(tmp_path):
    pyedflib = pytest.importorskip("pyedflib")
    t_fast, t_slow = np.arange(2560) / 256, np.arange(320) / 32
    fast, slow = np.sin(2 * np.pi * 1.0 * t_fast), np.sin(2 * np.pi * 0.5 * t_slow)
    headers = [{"label": lab, "dimension": "mV", "sample_frequency": fs, "physical_min": -2.0,
                "physical_max": 2.0, "digital_min": -32768, "digital_max": 32767}
               for lab, fs in (("ECG1", 256), ("ECG2", 256), ("RESP", 32))]
    path = tmp_path / "mixed.edf"
    with pyedflib.EdfWriter(str(path), 3, file_type=pyedflib.FILETYPE_EDF) as w:
        w.setSignalHeaders(headers)
        w.writeSamples([fast, fast, slow])
    s = read_signal(path)
    assert s.fs == 256.0 and s.data.shape == (2560, 3)
    assert any("RESP" in n and "32 Hz" in n for n in s.notes)
    expected = np.sin(2 * np.pi * 0.5 * t_fast)
    assert np.max(np.abs(s.channel("RESP")[256:-256] - expected[256:-256])) < 0.05


def test_unreadable_edf_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "broken.edf"
    bad.write_bytes(b"0       not an edf header" + b"\x00" * 300)
    with pytest.raises(CorruptDataError, match=r"broken\.edf"):
        read_signal(bad)


# ---------------------------------------------------------------- CSV


def test_csv_with_seconds_column_infers_fs_and_units(tmp_path):
    t = np.arange(500) / 250
    path = tmp_path / "ppg.csv"
    lines = ["time,PPG [au],ECG (mV),note"] + [f"{x:.6f},{np.sin(x)},{np.cos(x)},ok" for x in t]
    path.write_text("\n".join(lines) + "\n")
    s = read_signal(path)
    assert s.fs == pytest.approx(250.0) and s.channels == ["PPG", "ECG"] and s.units == ["au", "mV"]
    assert s.data.shape == (500, 2) and any("note" in n for n in s.notes)


def test_csv_with_iso_timestamps_sets_start(tmp_path):
    path = tmp_path / "hr.csv"
    rows = [f"2024-01-02T03:04:{5 + i * 0.5:06.3f},{60 + i}" for i in range(20)]
    path.write_text("timestamp,hr\n" + "\n".join(rows) + "\n")
    s = read_signal(path)
    assert s.fs == pytest.approx(2.0) and s.start == datetime(2024, 1, 2, 3, 4, 5)


def test_csv_irregular_sampling_is_refused_naming_the_rows(tmp_path):
    t = list(np.arange(100) / 100)
    t[40] += 0.004  # interval 39->40 and 40->41 off by 40%
    path = tmp_path / "jitter.csv"
    path.write_text("t,x\n" + "\n".join(f"{x:.6f},1.0" for x in t) + "\n")
    with pytest.raises(CorruptDataError, match=r"jitter\.csv: irregular sampling: 2 intervals.*lines 42, 43"):
        read_signal(path)


def test_csv_without_a_time_column_is_refused(tmp_path):
    path = tmp_path / "notime.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(CorruptDataError, match=r"notime\.csv: no time column.*'a', 'b'"):
        read_signal(path)


# ---------------------------------------------------------------- DICOM


def test_dicom_ecg_gives_channels_rate_and_units():
    data = pytest.importorskip("pydicom.data")
    path = data.get_testdata_file("waveform_ecg.dcm")
    if path is None:
        pytest.skip("pydicom's waveform_ecg.dcm is not available offline")
    s = read_signal(path)
    assert s.fs == 1000.0 and s.data.shape == (10000, 12) and s.units == ["uV"] * 12
    assert s.channels[:3] == ["Lead I (Einthoven)", "Lead II", "Lead III"]
    assert s.start == datetime(2013, 1, 25, 10, 59, 19)
    assert any("MEDIAN BEAT" in n for n in s.notes)


def test_dicom_without_waveforms_is_refused():
    data = pytest.importorskip("pydicom.data")
    path = data.get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom's CT_small.dcm is not available offline")
    with pytest.raises(CorruptDataError, match=r"CT_small\.dcm.*WaveformSequence"):
        read_signal(path)


# ---------------------------------------------------------------- the Signal record


def test_flat_and_nan_channels_are_flagged_not_raised():
    data = np.column_stack([np.sin(np.arange(100)), np.full(100, 0.5), np.full(100, np.nan)])
    s = Signal(data=data, fs=100, channels=["ok", "flat", "gone"], units=["mV"] * 3, source="x.csv")
    flags = channel_problems(s)
    assert len(flags) == 2 and "'flat' is flat" in flags[0] and "'gone' is all NaN" in flags[1]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"fs": 0}, "sampling rate"), ({"fs": float("nan")}, "sampling rate"),
    ({"channels": ["a"]}, "1 channel names"), ({"units": ["mV", "mV", "mV"]}, "3 units"),
    ({"data": np.zeros((2, 2, 2))}, "shaped"),
])
def test_signal_validation_names_the_source(kwargs, expected):
    base = {"data": np.zeros((10, 2)), "fs": 100.0, "channels": ["a", "b"], "units": ["mV", "mV"],
            "source": "rec42"}
    with pytest.raises(CorruptDataError, match=f"rec42.*{expected}"):
        Signal(**{**base, **kwargs})


def test_one_dimensional_data_becomes_one_channel_and_slice_shifts_annotations():
    s = Signal(data=np.arange(1000.0), fs=100, channels=["x"], units=[""], start=datetime(2020, 1, 1),
               annotations=[Annotation(150, "N"), Annotation(550, "V")])
    assert s.data.shape == (1000, 1)
    part = s.slice(1.0, 5.0)
    assert part.n_samples == 400 and part.annotations == [Annotation(50, "N")]
    assert part.start == datetime(2020, 1, 1, 0, 0, 1)
    np.testing.assert_array_equal(part.time[:2], [0.0, 0.01])
