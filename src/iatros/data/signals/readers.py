"""Read ECG / PPG recordings (WFDB, EDF/EDF+/BDF, CSV, DICOM waveforms) into one `Signal` shape.

Every failure names the file and what was expected (`CorruptDataError`, `MissingDataError`); library
exceptions from wfdb, pyedflib or pydicom never escape raw. Choices:
- WFDB: a path to the `.hea`, a `.dat` / `.mat` beside it, or the record name without suffix. Headers
  whose base time/date wfdb cannot parse (the PhysioNet 2017 validation set writes `2014-05-08
  05:05:15`) are read with that field taken out and the start parsed here. A signal file shorter than
  the header's sample count is refused as truncated, before wfdb reads it.
- EDF/EDF+/BDF: channels at the most common sampling rate are read as they are; channels at other
  rates are resampled to it with `scipy.signal.resample_poly` and a line in `Signal.notes` says so.
  EDF+ annotations are attached (symbol: the text, aux: the duration in seconds, if any).
- CSV: a time column (`time`, `t`, `seconds`, `time_s`, `sec` in seconds, or `timestamp` / `datetime` /
  any of these holding ISO timestamps); fs from the median interval; intervals more than 1% off it are
  refused naming the file lines; every other numeric column is a channel (`name [unit]` or
  `name (unit)` headers give units).
- DICOM: the first multiplex group of the WaveformSequence (pydicom's `waveform_array`, in the
  file's units, often uV); other groups are named in `Signal.notes`.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from fractions import Fraction
from pathlib import Path

import numpy as np

from iatros.data.signals.record import Annotation, Signal
from iatros.errors import ConfigError, CorruptDataError, IatrosError, MissingDataError

Channels = Sequence[int | str] | None

WFDB_SUFFIXES = ("", ".hea", ".dat", ".mat")
EDF_SUFFIXES = (".edf", ".bdf", ".rec")
CSV_SUFFIXES = (".csv", ".tsv")
DICOM_SUFFIXES = (".dcm", ".dicom")
TIME_COLUMNS = ("time", "t", "seconds", "time_s", "sec", "timestamp", "datetime", "date_time")
IRREGULAR_TOLERANCE = 0.01
# bits per sample of each WFDB storage format (flac formats 508/516/524 are compressed: not checked)
WFDB_BITS = {8: 8, 16: 16, 24: 24, 32: 32, 61: 16, 80: 8, 160: 16, 212: 12, 310: 32 / 3, 311: 32 / 3}


def read_signal(path: str | os.PathLike, *, channels: Channels = None,
                annotations: str | None = None) -> Signal:
    """Read one recording by its suffix; `channels` keeps those (names or positions); `annotations` is
    a WFDB annotation extension (e.g. "atr") to attach, read from beside the record (all of them,
    whichever channels are kept: WFDB beat labels belong to the recording)."""
    path = Path(path)
    reader = _reader_for(path)
    signal = reader(path, channels)
    if annotations:
        signal.annotations = read_annotations(path, extension=annotations)
    return signal


def _reader_for(path: Path) -> Callable[[Path, Channels], Signal]:
    """The reader for a file's suffix; an unknown suffix or a missing file is a clear error."""
    suffix = path.suffix.lower()
    if suffix in EDF_SUFFIXES:
        reader = _read_edf
    elif suffix in CSV_SUFFIXES:
        reader = _read_csv
    elif suffix in DICOM_SUFFIXES:
        reader = _read_dicom
    elif suffix in WFDB_SUFFIXES or _header_path(path).is_file():
        return _read_wfdb
    else:
        known = sorted({*WFDB_SUFFIXES[1:], *EDF_SUFFIXES, *CSV_SUFFIXES, *DICOM_SUFFIXES})
        raise CorruptDataError(f"{path}: suffix {path.suffix!r} is not a signal format iatros reads; "
                               f"expected one of {known} or a WFDB record name with a .hea beside it")
    if not path.is_file():
        raise MissingDataError(f"{path}: no such signal file")
    return reader


# ---------------------------------------------------------------- WFDB


def _header_path(path: Path) -> Path:
    """The `.hea` of a record given by its header, signal file or name."""
    if path.suffix.lower() in (".hea", ".dat", ".mat"):
        return path.with_suffix(".hea")
    return path.with_name(path.name + ".hea")


def _record_lines(header: Path) -> list[str]:
    """The header's lines without comments, blank lines or line-end characters."""
    try:
        text = header.read_text(encoding="latin-1")
    except OSError as e:
        raise CorruptDataError(f"{header}: cannot read the WFDB header ({e})") from e
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def _header_fs(header: Path, record_line: list[str]) -> float:
    """The record line's sampling rate; missing, non-numeric or <= 0 is refused (wfdb would assume 250)."""
    if len(record_line) < 3:
        raise CorruptDataError(f"{header}: the record line {' '.join(record_line)!r} gives no sampling "
                               "frequency (expected 'name n_signals fs [n_samples ...]')")
    text = record_line[2].split("/", 1)[0].split("(", 1)[0]
    try:
        fs = float(text)
    except ValueError:
        raise CorruptDataError(f"{header}: sampling frequency {record_line[2]!r} is not a number") from None
    if not math.isfinite(fs) or fs <= 0:
        raise CorruptDataError(f"{header}: sampling frequency must be > 0 Hz, the header says "
                               f"{record_line[2]!r}")
    return fs


def _parse_start(tokens: list[str]) -> tuple[datetime | None, bool]:
    """Start from the record line's time/date fields, and whether wfdb can parse them itself."""
    if not tokens:
        return None, True
    try:  # the WFDB layout: [[HH:]MM:]SS[.ms] [DD/MM/YYYY]
        fmt = ["%S", "%M:%S", "%H:%M:%S"][min(tokens[0].count(":"), 2)] + (".%f" if "." in tokens[0] else "")
        t = datetime.strptime(tokens[0], fmt).time()
        d = datetime.strptime(tokens[1], "%d/%m/%Y").date() if len(tokens) > 1 else None
        return (datetime.combine(d, t) if d else None), True
    except ValueError:
        pass
    try:  # what some exports write instead: YYYY-MM-DD HH:MM:SS
        return datetime.fromisoformat(" ".join(tokens[:2])), False
    except ValueError:
        return None, False


def _check_signal_files(header: Path, lines: list[str], n_sig: int, n_samples: int | None) -> None:
    """Each signal file the header names exists and holds at least the samples it promises."""
    per_file: dict[str, list[tuple[int, int]]] = {}
    for line in lines[1:1 + n_sig]:
        parts = line.split()
        if len(parts) < 2:
            raise CorruptDataError(f"{header}: signal line {line!r} lacks its file name and format")
        fmt_text = parts[1]
        m = re.match(r"(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?", fmt_text)
        if not m:
            raise CorruptDataError(f"{header}: signal format {fmt_text!r} on line {line!r} is not a WFDB "
                                   "format")
        per_file.setdefault(parts[0], []).append((int(m.group(1)), int(m.group(2) or 0)))
    for name, sigs in per_file.items():
        if name == "~":
            continue
        f = header.parent / name
        if not f.is_file():
            raise MissingDataError(f"{header}: the signal file {name} it names is missing (expected {f})")
        fmt, offset = sigs[0]
        if n_samples is None or fmt not in WFDB_BITS:
            continue
        need = offset + math.ceil(n_samples * len(sigs) * WFDB_BITS[fmt] / 8)
        have = f.stat().st_size
        if have < need:
            held = int((have - offset) * 8 / WFDB_BITS[fmt] / len(sigs))
            raise CorruptDataError(f"{f}: truncated: holds about {max(held, 0)} samples per channel but its "
                                   f"header {header.name} says {n_samples} ({have} of {need} bytes)")


def _wfdb_start(rec: object) -> datetime | None:
    """The record's start from wfdb's fields (date and time both needed)."""
    d, t = getattr(rec, "base_date", None), getattr(rec, "base_time", None)
    if isinstance(d, date) and isinstance(t, time):
        return datetime.combine(d, t)
    return None


def _rdrecord(record: Path, channels: list[int] | None):
    """wfdb.rdrecord in physical units, any wfdb error turned into one naming the record."""
    import wfdb

    try:
        return wfdb.rdrecord(str(record), channels=channels, physical=True, return_res=64)
    except Exception as e:  # wfdb raises bare ValueError/IndexError/OSError on bad files
        raise CorruptDataError(f"{record}.hea: wfdb cannot read this record ({type(e).__name__}: {e})") from e


def _read_wfdb(path: Path, channels: Channels) -> Signal:
    """A WFDB record (single or multi-segment) in physical units, its header checked first."""
    header = _header_path(path)
    if not header.is_file():
        raise MissingDataError(f"{path}: no WFDB header {header.name} beside it (expected {header})")
    lines = _record_lines(header)
    if not lines:
        raise CorruptDataError(f"{header}: the WFDB header is empty")
    rec_line = lines[0].split()
    fs = _header_fs(header, rec_line)
    record = header.with_suffix("")
    multi = "/" in rec_line[0]
    try:
        n_sig = int(rec_line[1])
        n_samples = int(rec_line[3]) if len(rec_line) > 3 else None
    except (IndexError, ValueError):
        raise CorruptDataError(f"{header}: record line {lines[0]!r} is not "
                               "'name n_signals fs n_samples'") from None
    start, wfdb_parses = _parse_start(rec_line[4:])
    if not multi:
        if len(lines) < 1 + n_sig:
            raise CorruptDataError(f"{header}: says {n_sig} signals but has {len(lines) - 1} signal lines")
        _check_signal_files(header, lines, n_sig, n_samples)
    names = _header_signal_names(lines, n_sig) if not multi else None
    idx = None if channels is None or names is None else [_channel_index(header, names, c) for c in channels]
    rec = _rdrecord(record, idx) if wfdb_parses else _read_with_clean_header(header, lines, rec_line, idx)
    return _wfdb_signal(rec, header, fs, n_samples, start, channels if idx is None else None)


def _header_signal_names(lines: list[str], n_sig: int) -> list[str]:
    """Signal names (description fields) from the signal lines, as wfdb reports them."""
    names = []
    for line in lines[1:1 + n_sig]:
        parts = line.split(None, 8)
        names.append(parts[8] if len(parts) > 8 else "")
    return names


def _channel_index(where: Path, names: list[str], channel: int | str) -> int:
    """The position of a requested channel, or an error listing the channels the file has."""
    is_int = isinstance(channel, (int, np.integer)) and not isinstance(channel, bool)
    if is_int and -len(names) <= channel < len(names):
        return int(channel) % len(names)
    if channel in names:
        return names.index(str(channel))
    raise ConfigError(f"{where}: no channel {channel!r}; the file has {names}")


def _read_with_clean_header(header: Path, lines: list[str], rec_line: list[str], idx: list[int] | None):
    """Read a record whose base time/date wfdb cannot parse: a copy of the header without them, beside
    links to the original signal files, in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="iatros-wfdb-") as tmp:
        folder = Path(tmp)
        (folder / header.name).write_text("\n".join([" ".join(rec_line[:4]), *lines[1:]]) + "\n")
        for line in lines[1:]:
            name = line.split()[0]
            if name != "~" and not (folder / name).exists():
                try:
                    (folder / name).symlink_to((header.parent / name).resolve())
                except OSError as e:
                    raise CorruptDataError(f"{header}: cannot stage {name} to read it ({e})") from e
        return _rdrecord(folder / header.stem, idx)


def _wfdb_signal(rec, header: Path, fs: float, n_samples: int | None, start: datetime | None,
                 channels: Channels) -> Signal:
    """The Signal of a wfdb Record, refusing one with fewer samples than the header says."""
    data = rec.p_signal
    if data is None:
        raise CorruptDataError(f"{header}: wfdb returned no samples")
    if n_samples is not None and data.shape[0] < n_samples:
        raise CorruptDataError(f"{header}: truncated: read {data.shape[0]} samples per channel, the header "
                               f"says {n_samples}")
    units = [u or "" for u in (rec.units or [""] * data.shape[1])]
    signal = Signal(data=np.asarray(data, dtype=np.float64), fs=fs, channels=list(rec.sig_name), units=units,
                    start=start or _wfdb_start(rec), source=str(header.with_suffix("")))
    return signal if channels is None else signal.select(channels)


def read_annotations(path: str | os.PathLike, extension: str = "atr") -> list[Annotation]:
    """The WFDB annotations (beats, rhythm changes) stored as `<record>.<extension>` beside the record."""
    import wfdb

    path = Path(path)
    record = _header_path(path).with_suffix("")
    ann_file = record.with_name(f"{record.name}.{extension}")
    if not ann_file.is_file():
        raise MissingDataError(f"{path}: no annotation file {ann_file.name} beside the record "
                               f"(expected {ann_file})")
    try:
        ann = wfdb.rdann(str(record), extension)
    except Exception as e:  # wfdb raises bare errors on damaged annotation files
        raise CorruptDataError(f"{ann_file}: wfdb cannot read these annotations "
                               f"({type(e).__name__}: {e})") from e
    aux = ann.aux_note or [""] * len(ann.sample)
    chan = ann.chan if ann.chan is not None else [0] * len(ann.sample)
    return [Annotation(sample=int(s), symbol=str(sym), aux=str(a or "").rstrip("\x00"), channel=int(c))
            for s, sym, a, c in zip(ann.sample, ann.symbol, aux, chan, strict=True)]


# ---------------------------------------------------------------- EDF / EDF+ / BDF


def _read_edf(path: Path, channels: Channels) -> Signal:
    """EDF/EDF+/BDF via pyedflib; channels at other rates resampled to the most common one."""
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as e:  # pyedflib raises OSError with its own wording
        raise CorruptDataError(f"{path}: not a readable EDF/BDF file ({e})") from e
    try:
        labels = [s.strip() for s in reader.getSignalLabels()]
        rates = [float(r) for r in reader.getSampleFrequencies()]
        if not labels:
            raise CorruptDataError(f"{path}: the EDF holds no signals")
        wanted = (list(range(len(labels))) if channels is None
                  else [_channel_index(path, labels, c) for c in channels])
        fs = Counter(rates[i] for i in wanted).most_common(1)[0][0]
        if not fs > 0:
            raise CorruptDataError(f"{path}: sampling frequency must be > 0 Hz, the header gives {fs}")
        columns, notes = [], []
        for i in wanted:
            x = np.asarray(reader.readSignal(i), dtype=np.float64)
            if rates[i] != fs:
                x = _resample_array(x, rates[i], fs)
                notes.append(f"{path.name}: channel {labels[i]!r} resampled from {rates[i]:g} Hz "
                             f"to {fs:g} Hz")
            columns.append(x)
        units = [reader.getPhysicalDimension(i).strip() for i in wanted]
        start = reader.getStartdatetime()
        onsets, durations, texts = reader.readAnnotations()
    except IatrosError:
        raise
    except Exception as e:
        raise CorruptDataError(f"{path}: cannot read the EDF signals ({type(e).__name__}: {e})") from e
    finally:
        reader.close()
    n = min(len(c) for c in columns)
    annotations = [Annotation(sample=int(round(o * fs)), symbol=str(t), aux=f"{d:g}" if d and d > 0 else "")
                   for o, d, t in zip(onsets, durations, texts, strict=True)]
    return Signal(data=np.column_stack([c[:n] for c in columns]), fs=fs, channels=[labels[i] for i in wanted],
                  units=units, start=start, annotations=annotations, source=str(path), notes=notes)


def _resample_array(x: np.ndarray, fs: float, fs_new: float) -> np.ndarray:
    """Resample along the first axis by the rational factor fs_new/fs (scipy's polyphase filter)."""
    from scipy.signal import resample_poly

    ratio = Fraction(fs_new / fs).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=0)


# ---------------------------------------------------------------- CSV


def _read_csv(path: Path, channels: Channels) -> Signal:
    """A table with a time column (seconds or ISO timestamps); other numeric columns are channels."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as e:
        raise CorruptDataError(f"{path}: not a readable CSV table ({type(e).__name__}: {e})") from e
    lower = {str(c).strip().lower(): c for c in frame.columns}
    time_col = next((lower[n] for n in TIME_COLUMNS if n in lower), None)
    if time_col is None:
        raise CorruptDataError(f"{path}: no time column; expected one named {list(TIME_COLUMNS)} (seconds "
                               f"or ISO timestamps), found columns {[str(c) for c in frame.columns]}")
    if len(frame) < 2:
        raise CorruptDataError(f"{path}: needs at least 2 rows to infer the sampling rate, has {len(frame)}")
    seconds, start = _csv_seconds(path, frame[time_col])
    fs = _regular_rate(path, seconds)
    numeric = [c for c in frame.columns if c != time_col and pd.api.types.is_numeric_dtype(frame[c])]
    if not numeric:
        raise CorruptDataError(f"{path}: no numeric signal columns besides the time column {time_col!r}")
    skipped = [str(c) for c in frame.columns if c != time_col and c not in numeric]
    names, units = zip(*(_name_unit(str(c)) for c in numeric), strict=True)
    signal = Signal(data=frame[numeric].to_numpy(dtype=np.float64), fs=fs, channels=list(names),
                    units=list(units), start=start, source=str(path),
                    notes=[f"{path.name}: non-numeric columns {skipped} skipped"] if skipped else [])
    return signal if channels is None else signal.select(channels)


def _csv_seconds(path: Path, column) -> tuple[np.ndarray, datetime | None]:
    """Seconds from the first row, and the start time when the column holds timestamps."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        t = column.to_numpy(dtype=np.float64)
        if not np.isfinite(t).all():
            bad = np.flatnonzero(~np.isfinite(t))[:5] + 2
            raise CorruptDataError(f"{path}: time column {column.name!r} is empty or not a number on lines "
                                   f"{bad.tolist()}")
        return t - t[0], None
    try:
        stamps = pd.to_datetime(column, format="ISO8601")
    except (ValueError, TypeError) as e:
        raise CorruptDataError(f"{path}: time column {column.name!r} is neither seconds nor ISO "
                               f"timestamps ({e})") from e
    if stamps.isna().any():
        bad = np.flatnonzero(stamps.isna().to_numpy())[:5] + 2
        raise CorruptDataError(f"{path}: time column {column.name!r} is empty on lines {bad.tolist()}")
    t = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(dtype=np.float64)
    return t, stamps.iloc[0].to_pydatetime()


def _regular_rate(path: Path, seconds: np.ndarray) -> float:
    """fs from the median interval; intervals more than 1% off it are refused naming the file lines."""
    dt = np.diff(seconds)
    step = float(np.median(dt))
    if not step > 0:
        raise CorruptDataError(f"{path}: time does not increase (median interval {step:g} s)")
    off = np.flatnonzero(np.abs(dt - step) > IRREGULAR_TOLERANCE * step)
    if off.size:
        lines = (off + 3).tolist()  # the later row of each bad interval; line 1 is the header
        shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
        raise CorruptDataError(f"{path}: irregular sampling: {len(lines)} intervals differ from the median "
                               f"{step:g} s by more than {IRREGULAR_TOLERANCE:.0%}, at file lines {shown}; "
                               "resample it to a fixed rate first")
    return 1.0 / step


def _name_unit(column: str) -> tuple[str, str]:
    """`ECG [mV]` or `ECG (mV)` -> ("ECG", "mV"); a bare name has no unit."""
    m = re.match(r"^\s*(.*?)\s*[\[(]\s*([^\])]+?)\s*[\])]\s*$", column)
    return (m.group(1), m.group(2)) if m else (column.strip(), "")


# ---------------------------------------------------------------- DICOM waveforms


def _read_dicom(path: Path, channels: Channels) -> Signal:
    """The first multiplex group of a DICOM waveform (ECG) with its channel labels, units and rate."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        raise CorruptDataError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from e
    groups = ds.get("WaveformSequence")
    if not groups:
        raise CorruptDataError(f"{path}: the DICOM file has no WaveformSequence (not a waveform object)")
    group = groups[0]
    try:
        data = ds.waveform_array(0)
        fs = float(group.SamplingFrequency)
        defs = list(group.ChannelDefinitionSequence)
    except Exception as e:
        raise CorruptDataError(f"{path}: cannot read waveform group 0 ({type(e).__name__}: {e})") from e
    names = [_dicom_label(d, i) for i, d in enumerate(defs)]
    units = [_dicom_unit(d) for d in defs]
    others = [f"{i}: {g.get('MultiplexGroupLabel', '')}" for i, g in enumerate(groups) if i]
    label = group.get("MultiplexGroupLabel", "")
    notes = [f"{path.name}: read waveform group 0 {label!r}; not read: {others}"] if others else []
    signal = Signal(data=data, fs=fs, channels=names, units=units, start=_dicom_start(ds), source=str(path),
                    notes=notes)
    return signal if channels is None else signal.select(channels)


def _dicom_label(definition, i: int) -> str:
    """A channel's label, else its source's code meaning, else its position."""
    if definition.get("ChannelLabel"):
        return str(definition.ChannelLabel)
    source = definition.get("ChannelSourceSequence")
    return str(source[0].get("CodeMeaning", f"channel {i}")) if source else f"channel {i}"


def _dicom_unit(definition) -> str:
    """A channel's UCUM unit code (e.g. uV), or empty when absent."""
    units = definition.get("ChannelSensitivityUnitsSequence")
    return str(units[0].get("CodeValue", "")) if units else ""


def _dicom_start(ds) -> datetime | None:
    """Acquisition date-time (or content date + time) when present and parseable."""
    text = str(ds.get("AcquisitionDateTime", "") or (ds.get("ContentDate", "") + ds.get("ContentTime", "")))
    for fmt in ("%Y%m%d%H%M%S.%f", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text.split("+")[0].split("-")[0], fmt)
        except ValueError:
            continue
    return None
