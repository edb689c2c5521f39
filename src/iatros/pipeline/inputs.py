"""Reading new inputs for `predict`, looked up by modality: image files, note files, CSV
tables with the training columns, or signal recordings. A file that cannot be read becomes an
error entry and the rest go on; a modality without a reader is a clear error."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError, IatrosError, MissingDataError
from iatros.kinds import Modality

log = logging.getLogger("iatros")
Reader = Callable[[Sequence[Path], dict[str, Any], dict[str, Any] | None], "NewInputs"]


@dataclass
class NewInputs:
    """What could be read: a batch for the model with one name per item, and the failures."""

    batch: Any
    names: list[str]
    errors: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra result fields by name

    def __len__(self) -> int:
        return len(self.names)


def _existing(files: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    found, errors = [], []
    for f in files:
        if f.is_file():
            found.append(f)
        else:
            errors.append({"input": str(f), "error": str(MissingDataError(
                f"input file {f} not found"))})
    return found, errors


def read_images(files: Sequence[Path], config: dict[str, Any],
                encoding: dict[str, Any] | None = None) -> NewInputs:
    """Image files by path; the model's dataset reads them (a bad one fails on its own)."""
    found, errors = _existing(files)
    return NewInputs(np.array([str(f) for f in found], dtype=object), [str(f) for f in found],
                     errors)


def read_notes(files: Sequence[Path], config: dict[str, Any],
               encoding: dict[str, Any] | None = None) -> NewInputs:
    """Note files as text (binary, empty or undecodable files become error entries)."""
    from iatros.nlp.io import read_note

    found, errors = _existing(files)
    texts, names = [], []
    for f in found:
        try:
            texts.append(read_note(f).text)
            names.append(str(f))
        except IatrosError as e:
            errors.append({"input": str(f), "error": str(e)})
    return NewInputs(np.array(texts, dtype=object), names, errors)


def expected_columns(config: dict[str, Any], encoding: dict[str, Any] | None) -> list[str]:
    """The table columns a tabular run reads (its encoding's columns, else its features)."""
    if encoding:
        return [*encoding.get("numeric", []), *encoding.get("categorical", {}),
                *encoding.get("opaque", {})]
    return list((config.get("data") or {}).get("features") or [])


def row_gaps(raw: Any, columns: list[str]) -> list[list[str]]:
    """Per row of a raw table, the expected columns it lacks or leaves empty (a one-hot
    feature `col_level` counts as given when `col` is)."""
    given = raw.notna().to_numpy() if len(raw.columns) else np.zeros((len(raw), 0), bool)
    index = {str(c): j for j, c in enumerate(raw.columns)}
    sources = [index.get(c, next((j for k, j in index.items() if c.startswith(f"{k}_")), None))
               for c in columns]
    return [[c for c, j in zip(columns, sources, strict=True) if j is None or not given[i, j]]
            for i in range(len(raw))]


def read_tables(files: Sequence[Path], config: dict[str, Any],
                encoding: dict[str, Any] | None = None) -> NewInputs:
    """CSV rows encoded as in training (the run's encoding.json; older runs: one-hot columns
    in the training order); each row is named FILE:LINE (its line in the file, the header
    being line 1)."""
    from iatros.data.sources.csv_table import one_hot_text_columns, read_table
    from iatros.data.sources.table_encoding import TableEncoding

    features = config["data"]["features"]
    found, errors = _existing(files)
    tables, names = [], []
    notes: dict[str, dict[str, Any]] = {}
    for f in found:
        try:
            raw = read_table(f)
            frame = (TableEncoding.from_dict(encoding).transform(raw, f) if encoding
                     else one_hot_text_columns(raw))
        except IatrosError as e:
            errors.append({"input": str(f), "error": str(e)})
            continue
        missing = [c for c in features if c not in frame.columns]
        if len(missing) == len(features):
            errors.append({"input": str(f), "error": f"{f} has none of the model's features "
                                                      f"({', '.join(features[:8])}, ...)"})
            continue
        if missing:
            log.warning("%s lacks %d feature(s), treated as missing: %s", f, len(missing),
                        ", ".join(missing[:10]))
        tables.append(frame.reindex(columns=features).to_numpy(np.float32))
        rows = [f"{f}:{i + 2}" for i in range(len(frame))]
        names += rows
        # a prediction from partial data must say so, row by row
        for row, gap in zip(rows, row_gaps(raw, expected_columns(config, encoding)), strict=True):
            if gap:
                notes[row] = {"missing_features": gap[:50], "n_missing_features": len(gap)}
    batch = np.concatenate(tables) if tables else np.zeros((0, len(features)), np.float32)
    return NewInputs(batch, names, errors, notes)


def read_signals(files: Sequence[Path], config: dict[str, Any],
                 encoding: dict[str, Any] | None = None) -> NewInputs:
    """Recordings (WFDB, EDF, CSV, DICOM waveforms): the channel the run was trained on (a
    signals:FOLDER `channel` option, else the first), resampled to the rate the model was
    trained at (its `fs` parameter) when the file's differs."""
    from iatros.data.signals import read_signal
    from iatros.data.signals.processing import resample

    fs = (config.get("model_params") or {}).get("fs")
    channel = (config.get("task_options") or {}).get("channel", 0)
    found, errors = _existing(files)
    records, names = [], []
    for f in found:
        try:
            signal = read_signal(f).select([channel])
            if fs and abs(signal.fs - float(fs)) > 1e-6:
                log.warning("%s: resampled from %g Hz to the model's %g Hz", f, signal.fs, float(fs))
                signal = resample(signal, float(fs))
        except IatrosError as e:
            errors.append({"input": str(f), "error": str(e)})
            continue
        records.append(signal.data[:, 0].astype(np.float32))
        names.append(str(f))
    batch = np.empty(len(records), dtype=object)
    batch[:] = records
    return NewInputs(batch, names, errors)


def read_beats(files: Sequence[Path], config: dict[str, Any],
               encoding: dict[str, Any] | None = None) -> NewInputs:
    """Recordings cut into beats (`data.signals.beats.recording_beats`: lead MLII or the first,
    R-peaks detected): one input per beat, named FILE@SECONDSs."""
    from iatros.data.signals import read_signal
    from iatros.data.signals.beats import recording_beats

    found, errors = _existing(files)
    rows, names = [], []
    for f in found:
        try:
            beats, seconds = recording_beats(read_signal(f))
        except IatrosError as e:
            errors.append({"input": str(f), "error": str(e)})
            continue
        rows.append(beats)
        names += [f"{f}@{t:.3f}s" for t in seconds]
    batch = np.vstack(rows) if rows else np.zeros((0, 0), np.float32)
    return NewInputs(batch, names, errors)


INLINE_SMILES = "smiles:"  # an input given as SMILES on the command line, not a file
SMILES_SUFFIXES = (".smi", ".smiles", ".txt")


def _smiles_column(columns: Sequence[str], wanted: str | None, path: Path) -> str:
    """The run's SMILES column when the file has it, else one called smiles (any case)."""
    for name in [wanted, "smiles", "SMILES", "Smiles"]:
        if name and name in columns:
            return name
    lowered = {c.lower(): c for c in columns}
    if "smiles" in lowered:
        return lowered["smiles"]
    raise ConfigError(f"{path} has no SMILES column ({wanted or 'smiles'}); columns are "
                      f"{', '.join(map(str, columns))}")


def _molecule_rows(f: Path, column: str | None) -> list[tuple[str, str]]:
    """(name FILE:LINE, SMILES) of each row of a CSV or a SMILES file (.smi: the first
    whitespace-separated field of each line, no header unless it says smiles)."""
    from iatros.data.formats.smiles import read_frame

    if f.name.lower().endswith(SMILES_SUFFIXES):
        rows = []
        for line, text in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.split():
                continue  # a blank line holds no molecule
            field = text.split()[0]
            if line == 1 and field.lower() == "smiles":
                continue
            rows.append((f"{f}:{line}", field))
        return rows
    frame = read_frame(f)
    name = _smiles_column(list(frame.columns), column, f)
    return [(f"{f}:{i + 2}", str(v)) for i, v in enumerate(frame[name].tolist())]


def read_molecules(files: Sequence[Path], config: dict[str, Any],
                   encoding: dict[str, Any] | None = None) -> NewInputs:
    """Molecules to screen: SMILES given inline (`smiles:CCO`, from `--smiles`), CSV files with
    a SMILES column (the run's `--smiles` column, else `smiles`), or .smi files; each row named
    FILE:LINE. Every SMILES is standardised as in training; an invalid one becomes an error entry
    naming its row, and the rest are scored. Each result keeps the SMILES given, the standardised
    one and what standardisation changed."""
    from tqdm.auto import tqdm

    from iatros.data.formats.smiles import standardise

    options = config.get("task_options") or {}
    column, tautomer = options.get("smiles"), bool(options.get("tautomer"))
    items: list[tuple[str, str]] = []
    errors: list[dict[str, str]] = []
    for f in files:
        text = str(f)
        if text.startswith(INLINE_SMILES):
            items.append((text, text[len(INLINE_SMILES):]))
            continue
        if not f.is_file():
            errors.append({"input": text, "error": str(MissingDataError(
                f"input file {f} not found (give SMILES themselves with --smiles)"))})
            continue
        try:
            items += _molecule_rows(f, column)
        except IatrosError as e:
            errors.append({"input": text, "error": str(e)})
    smiles, names = [], []
    notes: dict[str, dict[str, Any]] = {}
    for name, given in tqdm(items, desc="reading molecules", unit="mol", disable=None,
                            leave=False):
        std = standardise(given, tautomer)
        if not std.valid:
            errors.append({"input": name, "smiles": given, "error": f"{name}: {std.error}"})
            continue
        smiles.append(std.smiles)
        names.append(name)
        notes[name] = {"smiles": given, "standardised": std.smiles,
                       "standardisation": list(std.changes)}
    return NewInputs(np.array(smiles, dtype=object), names, errors, notes)


def _omic_features(config: dict[str, Any]) -> dict[str, list[str]]:
    """The run's features per omic, from its `omic:feature` names and block layout."""
    features = list((config.get("data") or {}).get("features") or [])
    blocks = (config.get("model_params") or {}).get("blocks") or [["omics", len(features)]]
    out, start = {}, 0
    for name, width in blocks:
        out[str(name)] = [f.split(":", 1)[1] if f.startswith(f"{name}:") else f
                          for f in features[start:start + int(width)]]
        start += int(width)
    return out


def read_omics(files: Sequence[Path], config: dict[str, Any],
               encoding: dict[str, Any] | None = None) -> NewInputs:
    """Matrices (samples x features; CSV, TSV, Parquet, .h5ad), one omic per file, each matched to
    the run's omic whose features it has most of; samples joined by id. An omic a sample lacks
    is left absent (the fusion network masks it), a missing feature column missing (imputed as
    in training); each sample's result says which omics and how many features it lacked."""
    from iatros.data.omics import read_matrix

    expected = _omic_features(config)
    found, errors = _existing(files)
    matrices: dict[str, Any] = {}
    for f in found:
        try:
            matrix = read_matrix(f)
        except IatrosError as e:
            errors.append({"input": str(f), "error": str(e)})
            continue
        columns = set(map(str, matrix.columns))
        overlap = {omic: len(columns & set(names)) for omic, names in expected.items()}
        omic = max(overlap, key=lambda k: overlap[k])
        if not overlap[omic]:
            errors.append({"input": str(f), "error": f"{f} has none of the model's features of "
                                                      f"any omic ({', '.join(expected)})"})
            continue
        if omic in matrices:
            errors.append({"input": str(f), "error": f"{f} holds {omic} features, as "
                                                      f"{matrices[omic][0]} does: give one file "
                                                      f"per omic"})
            continue
        matrices[omic] = (f, matrix)
    samples = list(dict.fromkeys(i for _, m in matrices.values() for i in m.index))
    parts, notes = [], {s: {"omics_present": [], "missing_features": {}} for s in samples}
    for omic, names in expected.items():
        block = np.full((len(samples), len(names)), np.nan, dtype=np.float32)
        if omic in matrices:
            f, matrix = matrices[omic]
            lacking = [c for c in names if c not in matrix.columns]
            if lacking:
                log.warning("%s lacks %d %s feature(s), treated as missing: %s", f, len(lacking),
                            omic, ", ".join(lacking[:10]))
            values = matrix.reindex(columns=names)
            rows = [k for k, s in enumerate(samples) if s in values.index]
            block[rows] = values.loc[[samples[k] for k in rows]].to_numpy(np.float32)
            for k in rows:
                notes[samples[k]]["omics_present"].append(omic)
                if lacking:
                    notes[samples[k]]["missing_features"][omic] = len(lacking)
        parts.append(block)
    batch = (np.concatenate(parts, axis=1) if samples
             else np.zeros((0, sum(map(len, expected.values()))), np.float32))
    for name in samples:
        notes[name]["omics_absent"] = [o for o in expected if o not in
                                       notes[name]["omics_present"]]
    return NewInputs(batch, samples, errors, notes)


def _no_reader(modality: Modality) -> Reader:
    def refuse(files: Sequence[Path], config: dict[str, Any],
               encoding: dict[str, Any] | None = None) -> NewInputs:
        raise ConfigError(f"{modality.value} runs do not predict from files yet; score another "
                          f"copy with `iatros evaluate RUN --data-root COPY` (health records: "
                          f"`iatros explain RUN STAY_ID` for one stay)")
    return refuse


READERS: dict[Modality, Reader] = {
    Modality.IMAGE: read_images,
    Modality.TEXT: read_notes,
    Modality.TABULAR: read_tables,
    Modality.SIGNAL: read_signals,
    Modality.BEATS: read_beats,
    Modality.MOLECULE: read_molecules,
    Modality.OMICS: read_omics,
}


def read_inputs(modality: Modality, files: Sequence[str | Path], config: dict[str, Any],
                encoding: dict[str, Any] | None = None) -> NewInputs:
    reader = READERS.get(modality) or _no_reader(modality)
    return reader([Path(p).expanduser() for p in files], config, encoding)
