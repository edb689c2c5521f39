"""Dynamic batching: requests for the same model that arrive within a few milliseconds of each
other are scored in one call (one forward pass, one Grad-CAM pass over the batch), as serving
systems such as Triton and TorchServe do. Each model has one worker thread, so concurrent
requests never run the network in parallel threads that would fight over the cores."""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iatros.serve.inputs import inline_png

log = logging.getLogger("iatros")
FIGURE_KEYS = ("heatmap", "figure")
_STOP: Any = object()


@dataclass
class _Item:
    paths: list[Path]
    explain: bool
    future: Future = field(default_factory=Future)


def _owner(key: str, owners: dict[str, int]) -> int | None:
    """Which request an input name belongs to (names are PATH, PATH:LINE or PATH@SECONDS)."""
    for candidate in (key, key.rsplit(":", 1)[0], key.split("@", 1)[0]):
        if candidate in owners:
            return owners[candidate]
    return None


def _shared_figures(results: list[dict[str, Any]], owners: dict[str, int]) -> set[str]:
    """Figure files that show inputs of more than one request (e.g. one plot of many curves)."""
    seen: dict[str, set[int | None]] = {}
    for result in results:
        for key in FIGURE_KEYS:
            if isinstance(result.get(key), str):
                seen.setdefault(result[key], set()).add(_owner(str(result.get("input", "")), owners))
    return {path for path, who in seen.items() if len(who) > 1}


class Batcher:
    """Collects requests for one loaded run and scores them together."""

    def __init__(self, loaded: Any, work_dir: Path, max_batch: int = 32, window_s: float = 0.004):
        self.loaded = loaded
        self.work_dir = work_dir
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="iatros-batcher")
        self._thread.start()

    def submit(self, paths: list[Path], explain: bool) -> Future:
        """A future of this request's results (input names are its own paths)."""
        item = _Item(list(paths), explain)
        with self._lock:
            if not self._closed:
                self._queue.put(item)
                return item.future
        # the version was replaced while this request held it: answer it here, alone
        threading.Thread(target=self._run, args=([item], explain), daemon=True).start()
        return item.future

    def _collect(self, first: _Item) -> list[_Item]:
        batch, n = [first], len(first.paths)
        deadline = time.monotonic() + self.window_s
        while n < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(timeout, 0)) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # answer this batch first, then stop
                break
            batch.append(item)
            n += len(item.paths)
        return batch

    def close(self) -> None:
        """Stop the worker once the requests already queued are answered (a replaced version)."""
        with self._lock:
            self._closed = True
            self._queue.put(_STOP)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = self._collect(first)
            for explain in (False, True):
                group = [b for b in batch if b.explain is explain]
                if group:
                    self._run(group, explain)

    def _run(self, group: list[_Item], explain: bool) -> None:
        owners = {str(p): i for i, item in enumerate(group) for p in item.paths}
        out: Path | None = None
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            out = Path(tempfile.mkdtemp(prefix="batch-", dir=self.work_dir))
            results = self.loaded.predict([p for item in group for p in item.paths], out,
                                          explain=explain, compact=True)
            split: list[list[dict[str, Any]]] = [[] for _ in group]
            shared = _shared_figures(results, owners)
            for result in results:
                for key in FIGURE_KEYS:
                    if isinstance(result.get(key), str):
                        # a figure drawn from several requests' inputs belongs to none of them
                        result[key] = None if result[key] in shared else inline_png(result[key], out)
                owner = _owner(str(result.get("input", "")), owners)
                if owner is not None:
                    split[owner].append(result)
            for item, got in zip(group, split, strict=True):
                item.future.set_result(got)
        except BaseException as e:  # noqa: BLE001 - every waiting request must be answered
            for item in group:
                if not item.future.done():
                    item.future.set_exception(e)
        finally:
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)
