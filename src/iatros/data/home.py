"""The data home: find a file under the data root, verify it, or download it with a checksum."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from iatros.errors import CorruptDataError, MissingDataError


@dataclass(frozen=True)
class RemoteFile:
    """A file a source needs: where it lives under the data root and where to get it."""

    relpath: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    homepage: str | None = None
    note: str = ""

    def where_to_get(self) -> str:
        parts = [p for p in (self.url, self.homepage) if p]
        return " or ".join(parts) if parts else "its publisher"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks so large files do not fill memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_matches(path: Path, spec: RemoteFile) -> bool | None:
    """True/False when the spec carries a checksum, None when there is nothing to compare."""
    if spec.sha256:
        return file_digest(path, "sha256") == spec.sha256.lower()
    if spec.md5:
        return file_digest(path, "md5") == spec.md5.lower()
    return None


def locate(spec: RemoteFile, root: Path, *, strict_checksum: bool = False) -> Path:
    """The path of `spec` under `root`; raise MissingDataError naming the path and the source.

    A local file whose checksum differs from the official one is still used (a warning says so)
    unless `strict_checksum`, because hospitals and curated copies legitimately re-save files.
    """
    path = Path(root) / spec.relpath
    if not path.is_file():
        raise MissingDataError(
            f"{Path(spec.relpath).name} not found: expected it at {path}. "
            f"Get it from {spec.where_to_get()} "
            f"(`iatros data download` fetches it where a source supports it, or point --data-root "
            f"or IATROS_DATA at a folder that has it)."
            + (f" {spec.note}" if spec.note else "")
        )
    if checksum_matches(path, spec) is False:
        message = f"{path} does not match the official checksum of {spec.relpath}"
        if strict_checksum:
            raise CorruptDataError(message + ": the file may be truncated or corrupt.")
        warnings.warn(message + "; using it anyway.", stacklevel=2)
    return path


def download(spec: RemoteFile, root: Path, *, force: bool = False) -> Path:
    """Download `spec` into `root` from its official URL, verify the checksum, then move it in.

    The file appears at its final path only after the checksum matched, so an interrupted or
    corrupt download never leaves a half-written file behind.
    """
    dest = Path(root) / spec.relpath
    if dest.is_file() and not force and checksum_matches(dest, spec) is not False:
        return dest
    if not spec.url:
        raise MissingDataError(
            f"{spec.relpath} cannot be downloaded automatically: get it from "
            f"{spec.where_to_get()} and place it at {dest}."
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise MissingDataError(
            f"cannot write {dest} ({e.strerror}): the data root {root} is not writable here; "
            f"set IATROS_DATA or --data-root to a writable folder."
        ) from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        if checksum_matches(tmp, spec) is False:
            raise CorruptDataError(
                f"download of {spec.url} does not match its checksum; nothing was saved to {dest}."
            )
        os.replace(tmp, dest)
    except OSError as e:
        raise MissingDataError(
            f"could not download {spec.relpath} from {spec.url} ({e}); "
            f"place the file at {dest} by hand."
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch(spec: RemoteFile, root: Path, *, allow_download: bool = False) -> Path:
    """Locate a file, downloading it first when allowed and missing."""
    if allow_download and not (Path(root) / spec.relpath).is_file():
        download(spec, root)
    return locate(spec, root)
