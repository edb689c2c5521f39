"""Arrays kept on disk: npz members unpacked once into memory-mapped `.npy` files, and row
views that select rows without reading them.

An image archive larger than memory is read one image at a time: `unpack_npz` streams each
member of an `.npz` (compressed or not) into an uncompressed `.npy` in chunks, so unpacking
holds one chunk at a time, and `np.load(..., mmap_mode="r")` then maps it. Indexing a memory
map with a list of rows copies those rows into memory; `RowView` keeps the list instead and
reads a row when one is asked for, so a split part or a cross-validation fold costs its
indices, not its pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import CorruptDataError

CHUNK_BYTES = 16 << 20
STORE_FORMAT = 1
_INDEX = "store.json"


class RowView:
    """Rows `index` of an array (typically a memory map), read only when one is asked for.

    `view[i]` is row i as an array; `view[rows]` (a list, integer array, boolean mask or
    slice) is another view; `np.asarray(view)` reads every row (for code that needs them all).
    """

    def __init__(self, base: Any, index: np.ndarray | None = None) -> None:
        self.base = base
        self.index = np.arange(len(base)) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.base[int(self.index[key])])
        return RowView(self.base, self.index[key])

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        order = np.argsort(self.index, kind="stable")   # a memory map reads ascending rows fastest
        rows = np.asarray(self.base[self.index[order]])
        out = np.empty_like(rows)
        out[order] = rows
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"RowView({len(self)} of {len(self.base)} rows, {self.dtype}, {self.shape[1:]})"


def _member_header(fh: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """shape, Fortran order and dtype from a `.npy` stream's header."""
    try:
        version = np.lib.format.read_magic(fh)
        reader = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f".npy format version {version} is not supported")
        return reader(fh)
    except ValueError as e:
        raise CorruptDataError(f"{where} is not a readable .npy array ({e})") from e


def _copy_member(archive: zipfile.ZipFile, member: str, target: Path, where: str) -> tuple[Any, ...]:
    """Stream one archive member into an uncompressed `.npy`; return its (shape, dtype)."""
    with archive.open(member) as fh:
        shape, fortran, dtype = _member_header(fh, where)
        if dtype.hasobject:
            raise CorruptDataError(f"{where} holds Python objects, which are never unpickled")
        out = np.lib.format.open_memmap(target, mode="w+", dtype=dtype, shape=shape,
                                        fortran_order=fortran)
        flat = out.reshape(-1, order="F" if fortran else "C").view(np.uint8)
        total, done = flat.size, 0
        while done < total:
            piece = fh.read(min(CHUNK_BYTES, total - done))
            if not piece:
                raise CorruptDataError(f"{where} ends after {done} of {total} bytes: the archive is "
                                       "truncated; download it again")
            flat[done:done + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            done += len(piece)
        out.flush()
        del out, flat
    return shape, str(dtype)


def _fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"format": STORE_FORMAT, "source": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def unpack_npz(path: Path, keys: Sequence[str], store: Path) -> dict[str, np.ndarray]:
    """`keys` of the npz at `path` as read-only memory maps, unpacked once into `store`.

    The folder is reused while the archive keeps its name, size and modification time; it is
    written under a temporary name and renamed, so an interrupted unpack is never mistaken for
    a finished one, and a damaged store is unpacked again.
    """
    path, store = Path(path), Path(store)
    wanted = _fingerprint(path)
    maps = _open_store(store, keys, wanted)
    if maps is not None:
        return maps
    tmp = store.with_name(store.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [k for k in keys if f"{k}.npy" not in names]
            if missing:
                have = sorted(n.removesuffix(".npy") for n in names)
                raise CorruptDataError(f"{path} lacks key(s) {', '.join(map(repr, missing))}; it has "
                                       f"{', '.join(have) or 'no arrays'}.")
            arrays = {k: _copy_member(archive, f"{k}.npy", tmp / f"{k}.npy", f"{path} key {k!r}")
                      for k in keys}
        (tmp / _INDEX).write_text(json.dumps({**wanted, "arrays": arrays}))
        _publish(tmp, store)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        raise CorruptDataError(f"{path} cannot be unpacked into {store} ({type(e).__name__}: {e}): "
                               "the archive may be truncated (download it again) or the cache's "
                               "disk full.") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    maps = _open_store(store, keys, wanted)
    if maps is None:
        raise CorruptDataError(f"{store}: the arrays unpacked from {path} cannot be mapped")
    return maps


def _publish(tmp: Path, store: Path) -> None:
    """Move the unpacked folder into place; another process that got there first wins."""
    shutil.rmtree(store, ignore_errors=True)
    try:
        os.replace(tmp, store)
    except OSError:
        if not (store / _INDEX).is_file():  # not a concurrent unpack of the same archive
            raise


def _open_store(store: Path, keys: Sequence[str], wanted: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The store's memory maps when it was unpacked from this very archive, else None."""
    try:
        index = json.loads((store / _INDEX).read_text())
    except (OSError, ValueError):
        return None
    if {k: index.get(k) for k in wanted} != wanted or not set(keys) <= set(index.get("arrays", {})):
        return None
    try:
        return {k: np.load(store / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in keys}
    except (OSError, ValueError):
        return None


class Stacked:
    """Arrays with the same row shape read as one (rows of the first, then the second, ...),
    without copying them together: `Stacked([train, val, test])` over three memory maps."""

    def __init__(self, parts: Sequence[Any]) -> None:
        if not parts:
            raise ValueError("Stacked needs at least one array")
        row_shapes = {tuple(p.shape[1:]) for p in parts}
        if len(row_shapes) > 1:
            raise ValueError(f"Stacked arrays must share their row shape, got {sorted(row_shapes)}")
        self.parts = list(parts)
        self.offsets = np.cumsum([0, *(len(p) for p in parts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.parts[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def ndim(self) -> int:
        return self.parts[0].ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            row = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} is outside {len(self)} rows")
            part = int(np.searchsorted(self.offsets, row, side="right")) - 1
            return np.asarray(self.parts[part][row - self.offsets[part]])
        rows = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = np.where(rows < 0, rows + len(self), rows).astype(np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside the {len(self)} rows of the stacked arrays")
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for part in np.unique(which):
            chosen = which == part
            out[chosen] = self.parts[part][rows[chosen] - self.offsets[part]]
        return out
