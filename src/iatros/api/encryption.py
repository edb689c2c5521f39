"""Encryption at rest for the CLI: make a master key file, and rotate the master key over run
folders, converted event folders and the service's tables.

    iatros keys new-master --out ~/.iatros/master.key
    export IATROS_MASTER_KEY_FILE=~/.iatros/master.key
    iatros keys rotate ~/.iatros/runs ~/ehr-cache --new-key-file new.key --service

The key material itself lives in `iatros.crypto`; this module only walks folders and reports.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iatros.access.patients import rotate_field_key
from iatros.access.store import open_engine
from iatros.crypto import (
    HOW_TO_SET,
    EncryptionError,
    KeyConfigError,
    KeyMissingError,
    LocalKeyProvider,
    RotationReport,
    active_provider,
    is_encrypted,
    new_key_text,
    rotate_file,
)
from iatros.crypto.parquet import is_encrypted_parquet, rotate_parquet
from iatros.data.ehr.convert import is_event_folder, rotate_cache
from iatros.errors import ConfigError
from iatros.run_folder import PATIENT_FILES
from iatros.settings import Settings, get_settings


def new_master_key(out: str | Path) -> dict[str, str]:
    """Write a new random 32-byte master key (base64) to `out`, readable by its owner only
    (mode 0600). An existing file is never overwritten: a lost key is lost data. Returns the
    path and the key's id (never the key)."""
    out = Path(out).expanduser()
    if out.exists():
        raise ConfigError(f"{out} already exists; a key file is never overwritten (the data "
                          f"under that key would be lost): choose another name")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder {out.parent} does not exist; create it first")
    text = new_key_text()
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.link(tmp, out)  # fails if `out` appeared meanwhile: nothing is overwritten
    except FileExistsError:
        raise ConfigError(f"{out} already exists; a key file is never overwritten") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "key_id": LocalKeyProvider.from_file(out).key_id}


def _rotate_folder(root: Path, old: Any, new: Any) -> RotationReport:
    """Every encrypted file under `root`: converted event folders as a whole (their manifests
    kept true), other envelope files and encrypted Parquet files one by one."""
    report = RotationReport()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if is_event_folder(here):
            report.extend(rotate_cache(here, old, new))
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            path = here / name
            if name.endswith(".tmp"):
                continue
            if is_encrypted(path) or is_encrypted_parquet(path):
                report.extend(_rotate_one(path, old, new))
            elif name in PATIENT_FILES:
                report.skipped.append((str(path), "not encrypted"))
    return report


def _rotate_one(path: Path, old: Any, new: Any) -> RotationReport:
    report = RotationReport()
    try:
        if is_encrypted_parquet(path):
            done = rotate_parquet(path, old, new)
            skipped = None if done else "not encrypted"
        else:
            skipped = rotate_file(path, old, new)
    except EncryptionError as e:
        report.failed.append((str(path), str(e)))
        return report
    except OSError as e:
        report.failed.append((str(path), f"cannot be read or written ({type(e).__name__})"))
        return report
    if skipped:
        report.skipped.append((str(path), skipped))
    else:
        report.rewrapped.append(str(path))
    return report


def rotate(paths: Sequence[str | Path], new_key_file: str | Path, *, service: bool = False,
           settings: Settings | None = None) -> dict[str, Any]:
    """Re-wrap the data keys under `paths` (run folders, converted event folders, folders
    holding them, or single files) from the configured master key (IATROS_MASTER_KEY_FILE or
    IATROS_MASTER_KEY) to the key in `new_key_file`; with `service`, also the service tables'
    patient-id key in the registry's database. Each file is rewritten atomically; a file the
    current key does not open is reported and left as it was, and the others go on. Returns
    {"rewrapped", "skipped", "failed", "service", "old_key_id", "new_key_id"}."""
    old = active_provider()
    if old is None:
        raise KeyMissingError(f"rotation needs the current master key: {HOW_TO_SET}")
    new = LocalKeyProvider.from_file(new_key_file)
    if new.key_id == old.key_id:
        raise KeyConfigError(f"{new_key_file} holds the key already configured ({old.key_id}); "
                             f"make a new one with `iatros keys new-master --out FILE`")
    if not paths and not service:
        raise ConfigError("nothing to rotate: name run folders or event folders, or --service")
    report = RotationReport()
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            report.failed.append((str(path), "does not exist"))
        elif path.is_dir():
            report.extend(_rotate_folder(path, old, new))
        else:
            report.extend(_rotate_one(path, old, new))
    result: dict[str, Any] = {**report.as_dict(), "service": None,
                              "old_key_id": old.key_id, "new_key_id": new.key_id}
    if service:
        settings = settings or get_settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        try:
            result["service"] = rotate_field_key(open_engine(settings.database_url), old, new) \
                or "no encrypted patient ids"
        except EncryptionError as e:
            result["failed"].append({"path": "service tables", "reason": str(e)})
            result["service"] = "failed"
    return result
