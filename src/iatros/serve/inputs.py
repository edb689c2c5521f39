"""Request bodies turned into the files `LoadedRun.predict` reads: uploads saved under safe
names in a private temporary folder, JSON rows written as a CSV, JSON notes as text files; and
the results mapped back to what the caller sent (file names, row numbers, inline heat maps)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from iatros.serve.problems import Problem

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
CHUNK = 1 << 20


def safe_name(name: str | None, index: int) -> str:
    """A file name without folders or odd characters (keeps the extension readers need)."""
    base = Path((name or "").replace("\\", "/")).name
    base = _SAFE.sub("_", base).lstrip(".") or f"input-{index}"
    return base[-120:]


@contextmanager
def workspace(root: Path) -> Iterator[Path]:
    """A private folder for one request's files, removed afterwards whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="req-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def save_uploads(files: Sequence[UploadFile], folder: Path, max_bytes: int,
                       max_items: int) -> tuple[list[Path], dict[str, str], str]:
    """Uploads written to `folder` (413 past `max_bytes` in all); their paths, the original
    name of each path, and a digest of the contents for the audit log."""
    if not files:
        raise Problem(422, "no file uploaded: send one or more files in the 'files' field",
                      field="files")
    if len(files) > max_items:
        raise Problem(413, f"{len(files)} files sent; at most {max_items} per request (use a batch "
                      f"job for more)", field="files")
    digest = hashlib.sha256()
    total, paths, names, used = 0, [], {}, set()
    for i, upload in enumerate(files):
        name = safe_name(upload.filename, i)
        stem = name.split(".")[0]
        # outputs (heat maps) are named by stem: keep stems apart, except a WFDB record's
        # files, which must share theirs
        key = name if Path(name).suffix.lower() in (".hea", *WFDB_COMPANIONS) else stem
        if key in used:
            name = f"{stem}-{i}{name[len(stem):]}"
            key = name if key == name else name.split(".")[0]
        used.add(key)
        path = folder / name
        with path.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise Problem(413, f"upload larger than {max_bytes} bytes (file "
                                  f"{upload.filename!r})", field="files")
                digest.update(chunk)
                out.write(chunk)
        paths.append(path)
        names[str(path)] = upload.filename or path.name
    return paths, names, digest.hexdigest()[:16]


WFDB_COMPANIONS = (".dat", ".mat", ".atr", ".qrs", ".xws")


def record_inputs(paths: list[Path]) -> list[Path]:
    """The inputs among uploaded files: a WFDB record's signal and annotation files travel with
    its .hea header, which is the input (one result per record, not per file)."""
    headers = {p.with_suffix("") for p in paths if p.suffix.lower() == ".hea"}
    return [p for p in paths if not (p.suffix.lower() in WFDB_COMPANIONS
                                     and p.with_suffix("") in headers)]


def rows_csv(rows: Sequence[dict[str, Any]], folder: Path) -> tuple[Path, dict[str, str]]:
    """JSON rows as one CSV file (columns: the union of the rows' keys, first seen first)."""
    if not rows:
        raise Problem(422, "'rows' is empty: send at least one object of column: value",
                      field="rows")
    columns: dict[str, None] = {}
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise Problem(422, f"rows[{k}] is not an object of column: value", field=f"rows[{k}]")
        columns.update(dict.fromkeys(map(str, row)))
    path = folder / "rows.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    # the reader names rows FILE:LINE (line 2 is the first row)
    names = {f"{path}:{k + 2}": f"rows[{k}]" for k in range(len(rows))}
    names[str(path)] = "rows"
    return path, names


def texts_files(texts: Sequence[str], folder: Path) -> tuple[list[Path], dict[str, str]]:
    if not texts:
        raise Problem(422, "'texts' is empty: send at least one note", field="texts")
    paths, names = [], {}
    for k, text in enumerate(texts):
        path = folder / f"note-{k:03d}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
        names[str(path)] = f"texts[{k}]"
    return paths, names


def inline_png(path: str | None, folder: Path) -> str | None:
    """A PNG inside `folder` as a data URI (None for anything outside it or unreadable)."""
    if not path:
        return None
    if path.startswith("data:image/png;base64,"):
        return path
    file = Path(path)
    if not file.is_absolute():
        file = folder / file
    try:
        resolved = file.resolve()
        resolved.relative_to(folder.resolve())
        return "data:image/png;base64," + base64.b64encode(resolved.read_bytes()).decode()
    except (OSError, ValueError):
        return None


def public_results(results: list[dict[str, Any]], names: dict[str, str],
                   folder: Path) -> list[dict[str, Any]]:
    """Results with the caller's names instead of temporary paths and figures inlined as PNG
    data URIs (no server path leaves the service)."""
    out = []
    for result in results:
        item = dict(result)
        raw = str(item.get("input", ""))
        item["input"] = names.get(raw) or names.get(raw.rsplit(":", 1)[0]) or Path(raw).name
        if "error" in item:
            item["error"] = str(item["error"]).replace(str(folder) + "/", "")
        for key in ("heatmap", "figure"):
            if key in item:
                item[key] = inline_png(item[key], folder)
        out.append(item)
    return out


def json_safe(value: Any) -> Any:
    """Results as plain JSON: numpy values to Python, NaN and infinities to null."""
    def default(o: Any) -> Any:
        return o.tolist() if hasattr(o, "tolist") else str(o)
    return json.loads(json.dumps(value, default=default), parse_constant=lambda _c: None)
