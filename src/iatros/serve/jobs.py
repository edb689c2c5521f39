"""Batch prediction jobs: inputs saved at submission, scored in a background worker in chunks
(progress = inputs done / total), results kept in memory for the owner to fetch; the inputs are
removed when the job ends."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iatros.errors import IatrosError
from iatros.serve.catalog import ServedModel
from iatros.serve.inputs import json_safe, public_results
from iatros.serve.problems import Problem

CHUNK = 16
KEEP = 200


@dataclass
class BatchJob:
    id: str
    model: str
    owner: str
    total: int
    status: str = "queued"
    done: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def public(self) -> dict[str, Any]:
        finished = self.status in ("done", "failed")
        return {"id": self.id, "model": self.model, "status": self.status, "done": self.done,
                "total": self.total, "results": self.results if finished else None,
                "error": self.error}


class JobQueue:
    """One background worker (predictions share the machine's cores with the requests)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._jobs: dict[str, BatchJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iatros-job")

    def new_folder(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))

    @staticmethod
    def discard_folder(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def submit(self, model: ServedModel, paths: list[Path], names: dict[str, str], folder: Path,
               explain: bool, owner: str) -> BatchJob:
        job = BatchJob(uuid.uuid4().hex, model.label, owner, len(paths))
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEEP]:
                del self._jobs[old]
        self._pool.submit(self._run, job, model, paths, names, folder, explain)
        return job

    def _run(self, job: BatchJob, model: ServedModel, paths: list[Path], names: dict[str, str],
             folder: Path, explain: bool) -> None:
        job.status = "running"
        try:
            loaded = model.require()
            for start in range(0, len(paths), CHUNK):
                part = paths[start:start + CHUNK]
                got = loaded.predict(part, folder / "out", explain=explain, compact=True)
                job.results += json_safe(public_results(got, names, folder))
                job.done += len(part)
            job.status = "done"
        except (IatrosError, Problem) as e:
            job.status, job.error = "failed", str(e).replace(str(folder) + "/", "")
        except Exception as e:  # a bug: the job fails, the service goes on
            job.status, job.error = "failed", f"{type(e).__name__}"
        finally:
            self.discard_folder(folder)

    def get(self, job_id: str, owner: str) -> BatchJob:
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise Problem(404, f"no batch job {job_id!r} of yours (jobs are kept while the service "
                          f"runs, the newest {KEEP})", field="job_id")
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
