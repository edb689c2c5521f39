"""A run folder on disk: its files, its status, and atomic writes so nothing is half-written."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from iatros.errors import RunError

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
CALIBRATION = "calibration.json"
TRAIN_LOG = "train_log.csv"
TUNING = "tuning.json"
REPORT = "report.html"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def slug(text: str) -> str:
    """A file-name-safe version of a task or model name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RunError(f"{path} is missing: {path.parent} is not a complete run folder") from e
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is unreadable or corrupt ({e})") from e


class RunFolder:
    """Paths and status of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        return self.file(CONFIG).is_file()

    def config(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise RunError(f"run folder {self.path} does not exist; `iatros runs` lists runs")
        return read_json(self.file(CONFIG))

    def status(self) -> dict[str, Any]:
        path = self.file(STATUS)
        return read_json(path) if path.is_file() else {"state": "unknown"}

    @property
    def is_complete(self) -> bool:
        return self.status().get("state") == "complete"

    def set_status(self, state: str, **extra: Any) -> None:
        status = {**self.status(), "state": state, "updated": now_iso(), **extra}
        if state != "failed":
            status.pop("error", None)
        write_json(self.file(STATUS), status)

    def require_complete(self, task: str | None = None) -> dict[str, Any]:
        """The config of a finished run, checking it belongs to `task` when one is given."""
        config = self.config()
        if task is not None and config.get("task") != task:
            raise RunError(f"run folder {self.path} belongs to task {config.get('task')!r}, "
                           f"not {task!r}")
        if not self.is_complete:
            raise RunError(f"run {self.path} did not finish (state: {self.status()['state']}); "
                           f"resume it with `iatros train {config.get('task')} --out {self.path} "
                           f"--resume`")
        return config
