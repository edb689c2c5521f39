"""The demo table: `api.demo()` (what `make demo` / `iatros demo` runs), one row per task and model.

Each demo task trains with each demo model on its patient-level 70/15/15 split (seed 0) and is
scored on the held-out test patients: the task's primary metric with a 95% percentile bootstrap
CI (1000 resamples of patients), n test patients and the wall time of the run.

    python benchmarks/demo.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from readme_tables import Table, command_line, timing_note, write_tables


def cell(value: float) -> str:
    """Probabilities and scores with 3 decimals; errors on a larger scale (RMSE) with 1."""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()
    from iatros import api

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = api.demo(Path(tmp) / "demo")
    total = time.perf_counter() - t0
    table = []
    for r in rows:
        lo, hi = r["ci95"]
        metric = f"{r['metric'].upper()} {cell(r['value'])} ({cell(lo)}-{cell(hi)})"
        table.append([r["task"], r["model"], metric, str(r["n"]), f"{r['seconds']:.1f}"])
        print(" | ".join(table[-1]), flush=True)
    print(f"all runs: {total:.0f} s")
    write_tables("demo", {"demo": Table(
        ["task", "model", "test metric (95% CI)", "n", "seconds"], table, command_line(),
        [f"Seed 0, patient-level 70/15/15 split; 95% percentile bootstrap CI over 1000 resamples of "
         f"test patients; `logreg` on the regression task is ridge regression. All nine runs took "
         f"{total:.0f} s; `make demo` (`iatros demo`) trains the same runs and prints the same "
         "rows.", note])})


if __name__ == "__main__":
    main()
