"""The one run-folder format: file names, atomic writers, and the readers every layer uses.

A run folder holds `config.json` (settings, with `run_format`), `status.json`, the model
(`model.json` plus `checkpoints/` or `model.skops`, or `members/mK/` for ensembles),
`calibration.json`, `predictions.csv`, `metrics.json`, optional `train_log.csv`,
`explanations.json`, `survival_curves.npz`, `tuning.json`, `manifest.json` (sha256 of every
artifact), `figures/`, `report.html` and `evaluations/NAME/`. The report, CLI, API, registry
and predictors read it through `RunFolder`, so no reader skips the completeness check
(`require_complete`), the format-version check (`config`) or the manifest (`require_intact`).

Files that hold patient rows (`PATIENT_FILES`: predictions, out-of-fold predictions,
explanations, survival curves, wherever they sit in the folder) are written encrypted when a
master key is configured (`iatros.crypto`: same names, the content starts with the envelope's
magic line) and read back transparently; without the key such a file is refused, naming it and
the variable to set. Everything else (config, metrics, report, model) stays plain.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.crypto import (
    EncryptionError,
    KeyProvider,
    active_provider,
    decrypt_bytes,
    encrypt_bytes,
    is_encrypted,
    is_encrypted_bytes,
)
from iatros.crypto.envelope import read_header
from iatros.errors import RunError

RUN_FORMAT = 2  # 1: folders written before the version was recorded (same layout)
CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
CALIBRATION = "calibration.json"
TRAIN_LOG = "train_log.csv"
FEDERATION = "federation.json"  # federated runs: sites, rounds, per-site tests, bytes
PRIVACY = "privacy.json"  # differentially private runs: the privacy the training spent
TUNING = "tuning.json"
SELECTION = "model_selection.json"  # `--model auto`: every candidate's cross-validation scores
CROSS_VALIDATION = "cross_validation.json"  # `train --cv K`: pooled out-of-fold metrics
CV_PREDICTIONS = "cv_predictions.csv"  # `train --cv K`: each train + val row's out-of-fold scores
REPORT = "report.html"
EXPLANATIONS = "explanations.json"
DATA_REPORT = "data_report.csv"  # what loading did to rows of the source (skipped, changed), per line
DOMAIN = "domain.npz"  # molecules: training fingerprints for the applicability domain of `predict`
CURVES = "survival_curves.npz"
MODEL_INFO = "model.json"
MODEL_DATA = "model_data.json"  # parameters learned from training text (vocabulary): not shared
ENCODING = "encoding.json"  # how raw table rows become features; may hold raw values: not shared
SKLEARN_MODEL = "model.skops"
SKLEARN_PICKLE = "model.joblib"  # format 1 only: refused unless trusted
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
MEMBERS = "members"
FIGURES = "figures"
EVALUATIONS = "evaluations"
# Not sealed by the manifest: the status, the manifest itself, and what is redrawn or added
# after training (report, figures, evaluations, predictions and explanations of new inputs).
UNSEALED = frozenset({STATUS, MANIFEST, REPORT, FIGURES, EVALUATIONS, "predictions",
                      "explanations"})
# Files holding patient rows (ids, scores, attributions, survival times): encrypted at rest when
# a master key is configured, by name wherever they are written in a run folder
PATIENT_FILES = frozenset({PREDICTIONS, CV_PREDICTIONS, EXPLANATIONS, CURVES, DATA_REPORT})


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def slug(text: str) -> str:
    """A file-name-safe version of a task or model name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


# --------------------------------------------------------------------------------------------
# Atomic writers: a crash leaves the old file or the new one, never half of one
# --------------------------------------------------------------------------------------------
TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a fresh temporary file beside `path`, flush it to disk, then rename
    it over `path`; on any failure the temporary file is removed and `path` is untouched."""
    path = Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=TEMP_SUFFIX)
    os.close(descriptor)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _encrypting(path: Path) -> KeyProvider | None:
    """The key to encrypt `path` with: a patient file while a master key is configured."""
    return active_provider() if Path(path).name in PATIENT_FILES else None


def _write_encrypted(path: Path, data: bytes, provider: KeyProvider) -> Path:
    sealed = encrypt_bytes(data, provider)
    return atomic_write(path, lambda tmp: tmp.write_bytes(sealed))


def write_text_atomic(path: Path, text: str) -> Path:
    provider = _encrypting(path)
    if provider is not None:
        return _write_encrypted(path, text.encode("utf-8"), provider)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    provider = _encrypting(path)
    if provider is not None:
        return _write_encrypted(path, frame.to_csv(index=False).encode("utf-8"), provider)
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    """Numeric arrays only: an object array would be pickled, and run folders never hold pickles."""
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise TypeError(f"{path.name}: array {name!r} holds Python objects; store numbers")

    provider = _encrypting(path)
    if provider is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return _write_encrypted(path, buffer.getvalue(), provider)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return atomic_write(path, save)


def sha256_file(path: Path) -> str:
    """sha256 of a file; of an encrypted one, of everything but its wrapped data key (the
    magic line, the authenticated header, the ciphertext), so re-wrapping the key under a new
    master key (`iatros keys rotate`) leaves a sealed run intact while any change to the
    content still shows. A changed wrapped key does not unwrap, so it cannot go unseen."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
        start = 0
        if is_encrypted_bytes(head):
            try:
                header = read_header(head, str(path))
            except EncryptionError:
                header = None  # a damaged header: digest the bytes as they are
            if header is not None:
                digest.update(header.fixed())
                start = header.end
        digest.update(head[start:])
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files a killed writer left in `folder` (and below); removed, and returned."""
    stale = [p for p in Path(folder).rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# --------------------------------------------------------------------------------------------
# Readers: each names the file and says what to do when it is missing or damaged
# --------------------------------------------------------------------------------------------
def _one_line(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def read_bytes(path: Path) -> bytes:
    """A file's content, decrypted when it is encrypted (KeyMissingError naming the file and
    the variable to set when no key is configured; DecryptionError when it was changed or the
    key is wrong)."""
    data = Path(path).read_bytes()
    return decrypt_bytes(data, name=str(path)) if is_encrypted_bytes(data) else data


def _text(path: Path) -> str:
    return read_bytes(path).decode("utf-8")


def _source(path: Path) -> Path | io.BytesIO:
    """What pandas or numpy reads: the path of a plain file, the decrypted bytes of another."""
    return io.BytesIO(read_bytes(path)) if is_encrypted(path) else path


def read_csv(path: Path, **options: Any) -> pd.DataFrame:
    """A CSV file of a run folder (decrypted when encrypted) with pandas' `options`."""
    return pd.read_csv(_source(Path(path)), **options)


def read_json(path: Path, hint: str = "") -> Any:
    """A JSON file; RunError naming it (and `hint`, what to do) when missing or corrupt."""
    hint = f"; {hint}" if hint else ""
    try:
        return json.loads(_text(path))
    except FileNotFoundError as e:
        raise RunError(f"run folder {path.parent} has no {path.name}: it is not a complete run "
                       f"folder{hint}") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunError(f"run folder {path.parent}: {path.name} cannot be read "
                       f"({_one_line(e)}){hint}") from e


def read_json_object(path: Path, hint: str = "") -> dict[str, Any]:
    data = read_json(path, hint)
    if not isinstance(data, dict):
        raise RunError(f"run folder {path.parent}: {path.name} is not a JSON object"
                       f"{'; ' + hint if hint else ''}")
    return data


def optional_json(path: Path) -> Any:
    """An optional JSON file (explanations, tuning): None when absent or unreadable (an
    encrypted one without its key is refused, not taken as absent)."""
    try:
        return json.loads(_text(path))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


class RunFolder:
    """Paths, status and readers of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    def file(self, name: str) -> Path:
        return self.path / name

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return self.file(CONFIG).is_file()

    def config(self) -> dict[str, Any]:
        """config.json, checking the folder's format version."""
        if not self.path.is_dir():
            raise RunError(f"run folder {self.path} does not exist; `iatros runs` lists runs")
        config = read_json_object(self.file(CONFIG),
                                  "it is not an iatros run folder, or it was copied incompletely")
        version = config.get("run_format", 1)
        if not isinstance(version, int) or not 1 <= version <= RUN_FORMAT:
            raise RunError(f"run folder {self.path} has run format {version!r}; this iatros reads "
                           f"formats 1-{RUN_FORMAT}: upgrade iatros to read it")
        return config

    def status(self) -> dict[str, Any]:
        path = self.file(STATUS)
        return read_json_object(path) if path.is_file() else {"state": "unknown"}

    @property
    def is_complete(self) -> bool:
        return self.status().get("state") == "complete"

    def set_status(self, state: str, **extra: Any) -> None:
        if state == "running":
            active_provider()  # a misconfigured master key fails now, not once training is done
        status = {**self.status(), "state": state, "updated": now_iso(), **extra}
        if state != "failed":
            status.pop("error", None)
        write_json(self.file(STATUS), status)

    def resume_hint(self, task: str | None = None) -> str:
        task = task or "TASK"
        return f"resume it with `iatros train {task} --resume --out {self.path}`"

    def require_complete(self, task: str | None = None) -> dict[str, Any]:
        """The config of a finished run, checking it belongs to `task` when one is given."""
        config = self.config()
        if task is not None and config.get("task") != task:
            raise RunError(f"run folder {self.path} belongs to task {config.get('task')!r}, "
                           f"not {task!r}")
        if not self.is_complete:
            raise RunError(f"run {self.path} did not finish (state: {self.status()['state']}); "
                           f"{self.resume_hint(config.get('task'))}")
        return config

    # -- readers of a finished run ------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return read_json_object(self.file(METRICS),
                                f"the run did not finish; {self.resume_hint(self._task())}")

    def calibration(self) -> dict[str, Any] | None:
        """calibration.json, or None for runs that have none (survival, token tagging)."""
        path = self.file(CALIBRATION)
        return read_json_object(path) if path.is_file() else None

    def predictions(self) -> pd.DataFrame:
        """predictions.csv with its required columns (split and a target) checked."""
        path = self.file(PREDICTIONS)
        hint = f"the run did not finish; {self.resume_hint(self._task())}"
        if not path.is_file():
            raise RunError(f"run folder {self.path} has no {PREDICTIONS}: {hint}")
        try:
            frame = read_csv(path, dtype={"patient_id": str, "split": str})
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise RunError(f"run folder {self.path}: {PREDICTIONS} cannot be read "
                           f"({_one_line(e)}); {hint}") from e
        has_target = any(c in ("target", "time") or c.startswith("target_") for c in frame.columns)
        missing = [c for c, ok in (("split", "split" in frame.columns), ("target", has_target))
                   if not ok]
        if missing:
            raise RunError(f"run folder {self.path}: {PREDICTIONS} lacks column(s) "
                           f"{', '.join(missing)}; {hint}")
        return frame

    def train_log(self) -> pd.DataFrame | None:
        """train_log.csv when the run has a usable one (it is optional)."""
        path = self.file(TRAIN_LOG)
        if not path.is_file():
            return None
        try:
            frame = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return frame if "epoch" in frame.columns and len(frame) else None

    def explanations(self) -> Any:
        return optional_json(self.file(EXPLANATIONS))

    def cross_validation(self) -> dict[str, Any] | None:
        """cross_validation.json of a run trained with `--cv K` (None for other runs)."""
        return optional_json(self.file(CROSS_VALIDATION))

    def tuning(self) -> dict[str, Any]:
        return read_json_object(self.file(TUNING), "only runs made by `iatros tune` have one")

    def encoding(self) -> dict[str, Any] | None:
        """encoding.json of a run on a user's table (None for other runs)."""
        path = self.file(ENCODING)
        return read_json_object(path) if path.is_file() else None

    def curves(self) -> dict[str, np.ndarray]:
        """survival_curves.npz: test/val curves, training targets and horizons."""
        path = self.file(CURVES)
        try:
            with np.load(_source(path)) as saved:
                return {name: saved[name] for name in saved.files}
        except FileNotFoundError as e:
            raise RunError(f"{path} is missing: survival runs keep their training targets there; "
                           f"{self.resume_hint(self._task())}") from e
        except (OSError, ValueError) as e:
            raise RunError(f"{path} is unreadable or corrupt ({_one_line(e)})") from e

    def domain(self) -> dict[str, np.ndarray] | None:
        """domain.npz of a molecule run (training fingerprints), None when the run has none."""
        path = self.file(DOMAIN)
        if not path.is_file():
            return None
        try:
            with np.load(_source(path)) as saved:
                return {name: saved[name] for name in saved.files}
        except (OSError, ValueError) as e:
            raise RunError(f"{path} is unreadable or corrupt ({_one_line(e)})") from e

    def evaluations(self) -> list[tuple[str, dict[str, Any] | str]]:
        """(name, metrics.json or why it could not be read) of each evaluations/NAME."""
        folder = self.file(EVALUATIONS)
        out: list[tuple[str, dict[str, Any] | str]] = []
        for path in sorted(folder.glob(f"*/{METRICS}")) if folder.is_dir() else []:
            try:
                out.append((path.parent.name, read_json_object(path)))
            except RunError as e:
                out.append((path.parent.name, f"{METRICS} cannot be read ({e})"))
        return out

    # -- manifest: sha256 of every artifact, so a changed file is detected before it is used ---
    def artifacts(self) -> list[Path]:
        """Files the manifest seals: everything but UNSEALED entries and temporary files."""
        return sorted(p for p in self.path.rglob("*") if p.is_file()
                      and p.relative_to(self.path).parts[0] not in UNSEALED
                      and not p.name.endswith(TEMP_SUFFIX))

    def seal(self) -> str:
        """Write manifest.json (sha256 of each artifact); return the manifest's own sha256."""
        files = {p.relative_to(self.path).as_posix(): sha256_file(p) for p in self.artifacts()}
        write_json(self.file(MANIFEST), {"run_format": RUN_FORMAT, "algorithm": "sha256",
                                         "files": files})
        return self.manifest_digest()

    def manifest_digest(self) -> str | None:
        path = self.file(MANIFEST)
        return sha256_file(path) if path.is_file() else None

    def verify(self) -> dict[str, list[str]]:
        """Artifacts that differ from the manifest: changed, missing and added files."""
        manifest = read_json_object(self.file(MANIFEST), "seal it with `iatros verify RUN --seal` "
                                                         "once you have checked it")
        sealed = manifest.get("files") or {}
        present = {p.relative_to(self.path).as_posix(): p for p in self.artifacts()}
        return {"changed": sorted(n for n, d in sealed.items()
                                  if n in present and sha256_file(present[n]) != d),
                "missing": sorted(n for n in sealed if n not in present),
                "added": sorted(n for n in present if n not in sealed)}

    def require_intact(self, trust: bool = False) -> None:
        """Refuse a run folder whose artifacts differ from its manifest (or that has none),
        unless the caller trusts it."""
        if trust:
            return
        if not self.file(MANIFEST).is_file():
            version = self.config().get("run_format", 1)
            raise RunError(f"run folder {self.path} (run format {version}) has no {MANIFEST} "
                           f"sealing its files, so a changed file could not be detected; check "
                           f"it, then seal it with `iatros verify {self.path} --seal`, or pass "
                           f"--trust")
        problems = {k: v for k, v in self.verify().items() if v}
        if problems:
            listed = "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in problems.items())
            raise RunError(f"run folder {self.path} does not match its {MANIFEST} ({listed}); "
                           f"a file was changed after training. Restore it, or pass --trust if "
                           f"you changed it yourself")

    def new_evaluation(self, name: str) -> Path:
        folder = self.file(EVALUATIONS) / slug(name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _task(self) -> str | None:
        try:
            return json.loads(self.file(CONFIG).read_text(encoding="utf-8")).get("task")
        except (OSError, ValueError, AttributeError):
            return None
