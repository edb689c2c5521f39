"""A user's own images: a folder of files plus a CSV of labels, checked up front, read lazily.

Everything that can be checked without decoding pixels is checked at load time (columns, missing,
duplicate and unlisted files), so a bad dataset fails in seconds rather than hours into training;
`check_readable` decodes the files too when the caller wants that guarantee.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.formats import SUPPORTED_SUFFIXES, read_image
from iatros.data.formats.image import suffix_of
from iatros.errors import ConfigError, CorruptDataError, IatrosError, MissingDataError

SHOWN = 5  # how many offending names an error message lists


@dataclass
class ImageFolderData:
    """Image paths with their labels (as given in the CSV), patient ids, optional split labels and
    the remaining CSV columns as attributes; row i of each belongs to `paths[i]`."""

    folder: Path
    csv_path: Path
    paths: list[Path]
    labels: pd.Series
    patient_ids: np.ndarray
    splits: np.ndarray | None
    attributes: pd.DataFrame
    unreferenced: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def check_readable(self, limit: int | None = None, **read_options: Any) -> int:
        """Decode the first `limit` images (all by default) with `read_image(path, **read_options)`;
        raise one CorruptDataError listing every unreadable file and why. Returns how many were read."""
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be a non-negative number of images, not {limit}")
        paths = self.paths if limit is None else self.paths[:limit]
        failures = []
        for path in paths:
            try:
                read_image(path, **read_options)
            except IatrosError as e:
                reason = str(e).removeprefix(f"{path}: ")
                failures.append(f"  {path}: {reason}")
        if failures:
            raise CorruptDataError(f"{len(failures)} of {len(paths)} image(s) listed in {self.csv_path} "
                                   f"cannot be read:\n" + "\n".join(failures))
        return len(paths)


def _shown(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _rows(mask: np.ndarray) -> str:
    """CSV line numbers (header is line 1) of the flagged rows."""
    return _shown([str(i + 2) for i in np.flatnonzero(mask)])


def _find_csv(labels_csv: str | Path, folder: Path) -> Path:
    """The CSV as given, else relative to the image folder."""
    given = Path(labels_csv).expanduser()
    for option in (given, folder / given):
        if option.is_file():
            return option.absolute()
    raise MissingDataError(f"labels CSV {str(labels_csv)!r} not found (looked at {given.absolute()} "
                           f"and {folder / given})")


def _folder_files(folder: Path, exclude: Path) -> list[Path]:
    """Every non-hidden file under `folder` (recursively), except the labels CSV."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return [f for f in found if os.path.normcase(os.path.abspath(f)) != os.path.normcase(str(exclude))]


def _read_csv(path: Path, text_columns: list[str]) -> pd.DataFrame:
    """The CSV with path and id columns kept as text (patient "007" must not become 7)."""
    try:
        frame = pd.read_csv(path, dtype={c: str for c in text_columns})
    except pd.errors.EmptyDataError as e:
        raise CorruptDataError(f"{path}: the labels CSV is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CorruptDataError(f"{path}: cannot parse as CSV ({e})") from e
    if frame.empty:
        raise CorruptDataError(f"{path}: the labels CSV has a header but no rows")
    return frame


def _resolve(folder: Path, value: str) -> Path:
    """An image path from the CSV: absolute as is, else relative to the folder; '\\' read as '/'."""
    text = value.strip()
    if os.sep == "/" and "\\" in text:
        text = text.replace("\\", "/")
    candidate = Path(text).expanduser()
    return Path(os.path.normpath(candidate if candidate.is_absolute() else folder / candidate))


def load_image_folder(folder: str | Path, labels_csv: str | Path, *, image_column: str = "image",
                      label_column: str = "label", patient_column: str | None = "patient_id",
                      split_column: str | None = None) -> ImageFolderData:
    """Pair the images under `folder` with the rows of `labels_csv`, checking both; pixels are not read.

    Errors name the file: missing/empty folder, empty CSV, missing columns (the present ones are
    listed), rows without an image, duplicate images, listed images that do not exist. Images in the
    folder that the CSV does not list only raise a warning. With `patient_column=None` every image
    counts as its own patient.
    """
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise MissingDataError(f"image folder {folder} not found")
    csv_path = _find_csv(labels_csv, folder)
    files = _folder_files(folder, exclude=csv_path)
    if not files:
        raise MissingDataError(f"image folder {folder} is empty: it holds no files besides the labels CSV")
    text_columns = [c for c in (image_column, patient_column, split_column) if c]
    frame = _read_csv(csv_path, text_columns)
    required = [c for c in (image_column, label_column, patient_column, split_column) if c]
    absent = [c for c in required if c not in frame.columns]
    if absent:
        hint = (" (pass patient_column=None if every image is a different patient)"
                if patient_column in absent else "")
        raise CorruptDataError(f"{csv_path}: column(s) {absent} not found; columns are "
                               f"{', '.join(map(str, frame.columns))}{hint}")
    values = frame[image_column]
    blank = (values.isna() | (values.fillna("").str.strip() == "")).to_numpy()
    if blank.any():
        raise CorruptDataError(f"{csv_path}: {int(blank.sum())} row(s) have no {image_column!r} value "
                               f"(lines {_rows(blank)})")
    if patient_column:
        no_id = frame[patient_column].isna().to_numpy()
        if no_id.any():
            raise CorruptDataError(f"{csv_path}: {int(no_id.sum())} row(s) have no {patient_column!r} "
                                   f"value (lines {_rows(no_id)}); patient ids keep a patient's images "
                                   f"in one split")
    names = [str(v) for v in values]
    paths = [_resolve(folder, v) for v in names]
    root = Path(os.path.realpath(folder))
    outside = np.array([not Path(os.path.realpath(p)).is_relative_to(root) for p in paths])
    if outside.any():
        shown = [names[i] for i in np.flatnonzero(outside)]
        raise CorruptDataError(f"{csv_path}: {int(outside.sum())} listed image(s) lie outside "
                               f"{folder}: {_shown(shown)} (lines {_rows(outside)}); images must be "
                               f"inside the folder (no '..', absolute paths or links leading out)")
    keys = pd.Series([os.path.normcase(str(p)) for p in paths])
    repeated = keys.duplicated(keep=False).to_numpy()
    if repeated.any():
        listed = sorted({names[i] for i in np.flatnonzero(repeated)})
        raise CorruptDataError(f"{csv_path}: {len(listed)} image(s) listed on more than one row: "
                               f"{_shown(listed)} (lines {_rows(repeated)}); keep one row per image")
    missing = [name for name, path in zip(names, paths, strict=True) if not path.is_file()]
    if missing:
        raise MissingDataError(f"{csv_path}: {len(missing)} of {len(paths)} listed image file(s) do not "
                               f"exist under {folder}: {_shown(missing)}")
    listed_keys = set(keys)
    unreferenced = [f for f in files if suffix_of(f) in SUPPORTED_SUFFIXES
                    and os.path.normcase(os.path.normpath(f)) not in listed_keys]
    if unreferenced:
        warnings.warn(f"{folder}: {len(unreferenced)} image file(s) are not listed in {csv_path.name} and "
                      f"will not be used: {_shown([str(f.relative_to(folder)) for f in unreferenced])}",
                      stacklevel=2)
    no_label = frame[label_column].isna().to_numpy()
    if no_label.any():
        warnings.warn(f"{csv_path}: {int(no_label.sum())} row(s) have no {label_column!r} value "
                      f"(lines {_rows(no_label)})", stacklevel=2)
    patient_ids = (frame[patient_column].astype(str).str.strip().to_numpy() if patient_column
                   else np.asarray(names, dtype=object))
    return ImageFolderData(
        folder=folder,
        csv_path=csv_path,
        paths=paths,
        labels=frame[label_column].reset_index(drop=True),
        patient_ids=patient_ids,
        splits=frame[split_column].to_numpy() if split_column else None,
        attributes=frame.drop(columns=required).reset_index(drop=True),
        unreferenced=unreferenced,
    )
