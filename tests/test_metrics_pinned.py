"""Refactors must not move a number: the demo table and a run of every target kind, re-scored with
`evaluate` and `audit`, give the metrics pinned in tests/data/pinned_metrics.json.

The pins were written by this module (`IATROS_WRITE_PINS=1 pytest tests/test_metrics_pinned.py`)
on the code before the run pipeline was split into scorers; rewrite them only for an intended
change of a metric, and say so in the commit.

Training a network is exact only on the same float code paths: MKL, oneDNN and ATen pick kernels by
CPU (vendor, AVX2 / AVX-512), and 88 epochs turn a last-digit difference into another model. So
the numbers are computed in a child process held to the portable paths (`PORTABLE`: MKL's
conditional numerical reproducibility, ATen's default kernels, oneDNN's SSE4.1) with 2 threads,
which give the same bits on any x86-64 CPU.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iatros import api
from iatros.kinds import Modality, TargetKind
from iatros.tasks import Task, register_task
from tests.nlp.test_ner_pipeline import _write_iob
from tests.test_api import _three_class_loader

PINS = Path(__file__).parent / "data" / "pinned_metrics.json"
FAST = api.EvalOptions(n_boot=50)
KEPT = ("splits", "calibration", "subgroups", "survival", "threshold", "threshold_rule")
TOL = 1e-6
THREADS = 2
PORTABLE = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default",
            "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": str(THREADS)}
ROOT = Path(__file__).resolve().parents[1]

def _iob_root(root: Path) -> Path:
    _write_iob(root / "bioner" / "NCBI-disease-IOB")
    return root


def _chest_root(root: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 32), ("test", 32)):
        labels = (rng.random((n, 14)) < 0.3).astype(np.uint8)
        images = rng.integers(0, 80, size=(n, 28, 28)).astype(np.uint8)
        images[labels[:, 0] == 1, :8, :8] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    (root / "medmnist").mkdir(parents=True)
    np.savez(root / "medmnist" / "chestmnist.npz", **arrays)
    return root


def _kept(path: Path) -> dict[str, Any]:
    metrics = json.loads((path / "metrics.json").read_text())
    return {k: metrics[k] for k in KEPT if k in metrics}


def _rescored(result: dict[str, Any]) -> dict[str, Any]:
    return {"splits": result["splits"], "subgroups": result["subgroups"]}


def collect(tmp: Path) -> dict[str, Any]:
    """Every pinned number, computed now."""
    out: dict[str, Any] = {}
    demo = api.demo(tmp / "demo")
    out["demo"] = [{k: r[k] for k in ("task", "model", "metric", "value", "ci95", "n")} for r in demo]
    for r in demo:
        out[f"demo/{r['task']}/{r['model']}"] = _kept(Path(r["report"]).parent)
    binary = Path(demo[3]["report"]).parent  # whas500-mortality-1y, mlp
    out["rescore/binary"] = _rescored(api.evaluate(binary, split="val", eval_options=FAST))
    out["audit/binary"] = api.audit(binary, by="sex", eval_options=FAST)

    for kind in (TargetKind.MULTICLASS, TargetKind.ORDINAL):
        task = register_task(Task(name=f"pin-{kind.value}", description="pinned toy",
                                  modality=Modality.TABULAR, target=kind, loader=_three_class_loader(kind),
                                  classes=("low", "mid", "high"), sensitive_attributes=("site",)),
                             replace=True)
        run = api.train(task, epochs=5, out=tmp / kind.value, eval_options=FAST, register=False)
        out[kind.value] = _kept(run)
        out[f"rescore/{kind.value}"] = _rescored(api.evaluate(run, split="val", eval_options=FAST))

    chest = api.train("medmnist:chestmnist", data_root=_chest_root(tmp / "chest"), epochs=1,
                      params={"widen_factor": 0.125}, out=tmp / "multilabel",
                      train_overrides={"amp": False},  # bf16 only where the CPU has it natively
                      eval_options=api.EvalOptions(n_boot=20), register=False)
    out["multilabel"] = _kept(chest)

    for model, extra in (("coxph", {}), ("deepsurv", {"epochs": 3, "ensemble": 1})):
        run = api.train("survival-whas500", model=model, out=tmp / f"surv-{model}",
                        eval_options=FAST, register=False, **extra)
        out[f"survival/{model}"] = _kept(run)
        out[f"rescore/survival/{model}"] = _rescored(api.evaluate(run, split="val",
                                                                  eval_options=FAST))
        out[f"audit/survival/{model}"] = api.audit(run, by="sex", eval_options=FAST)

    tokens = api.train("ner-ncbi-disease", data_root=_iob_root(tmp / "iob"), epochs=2,
                       out=tmp / "tokens", eval_options=FAST, register=False)
    out["tokens"] = _kept(tokens)
    out["rescore/tokens"] = _rescored(api.evaluate(tokens, split="val", eval_options=FAST))
    return json.loads(json.dumps(out, default=str))


def _differences(pinned: Any, now: Any, where: str = "") -> list[str]:
    if isinstance(pinned, dict) and isinstance(now, dict):
        diffs = [f"{where}/{k}: missing now" for k in pinned if k not in now]
        diffs += [f"{where}/{k}: new key" for k in now if k not in pinned]
        for k in pinned.keys() & now.keys():
            diffs += _differences(pinned[k], now[k], f"{where}/{k}")
        return diffs
    if isinstance(pinned, list) and isinstance(now, list):
        if len(pinned) != len(now):
            return [f"{where}: length {len(pinned)} -> {len(now)}"]
        return [d for i, (a, b) in enumerate(zip(pinned, now, strict=True))
                for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(pinned, float) and isinstance(now, int | float) and not isinstance(now, bool):
        same = (math.isnan(pinned) and math.isnan(now)) or math.isclose(pinned, now, rel_tol=TOL,
                                                                        abs_tol=TOL)
        return [] if same else [f"{where}: {pinned} -> {now}"]
    return [] if pinned == now else [f"{where}: {pinned!r} -> {now!r}"]


def collect_portably(out: Path) -> dict[str, Any]:
    """`collect` in a child process on the portable float paths (see the module docstring)."""
    result = out / "now.json"
    env = {**os.environ, **PORTABLE, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-m", "tests.test_metrics_pinned", str(out)], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=900)
    if child.returncode != 0:
        pytest.fail(f"collecting the numbers failed (exit {child.returncode}):\n"
                    f"{child.stderr[-4000:]}")
    return json.loads(result.read_text())


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the pins are x86-64 float results; other CPUs round differently")
def test_every_target_kind_scores_exactly_as_pinned(tmp_path):
    now = collect_portably(tmp_path)
    if os.environ.get("IATROS_WRITE_PINS") == "1":
        PINS.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"pins rewritten: {PINS}")
    if not PINS.is_file():
        pytest.fail(f"{PINS} is missing: write it with IATROS_WRITE_PINS=1")
    diffs = _differences(json.loads(PINS.read_text()), now)
    assert not diffs, f"{len(diffs)} pinned number(s) moved:\n" + "\n".join(sorted(diffs)[:40])


if __name__ == "__main__":
    import warnings

    import torch

    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", message=".*checksum")
    where = Path(sys.argv[1])
    (where / "now.json").write_text(json.dumps(collect(where / "runs"), default=str))
