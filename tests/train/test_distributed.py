"""Data-parallel training: two gloo processes on this machine follow the one-process run with the
same global batch, rank 0 alone writes, a killed rank's run resumes, launch errors are clear."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from iatros import api
from iatros.errors import ConfigError
from iatros.train import distributed
from iatros.train.trainer import Callback, EpochRecord, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data() -> tuple[TensorDataset, TensorDataset]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(203, 5)).astype(np.float32)
    y = (x @ np.arange(1, 6, dtype=np.float32) + rng.normal(size=203)).astype(np.float32)
    return (TensorDataset(torch.tensor(x[:160]), torch.tensor(y[:160])),
            TensorDataset(torch.tensor(x[160:]), torch.tensor(y[160:])))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 8), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x))).squeeze(-1)


class _Crash(Callback):
    """Rank 0 fails after an epoch's checkpoint is written (as a killed process would)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        if record.epoch == self.epoch:
            raise RuntimeError(f"crash after epoch {self.epoch}")


def _fit(out: str, checkpoints: str | None, epochs: int, resume: bool = False,
         crash_after: int | None = None) -> None:
    """Train the small regression net; rank 0 writes its history (train loss, val loss)."""
    distributed.init_from_env("cpu")
    train, val = _data()
    trainer = Trainer(TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, patience=0,
                                  progress=False),
                      checkpoint_dir=Path(checkpoints) if checkpoints else None,
                      callbacks=[_Crash(crash_after)] if crash_after else ())
    torch.manual_seed(0)
    result = trainer.fit(_Net(), nn.MSELoss(), train, val, resume=resume)
    if distributed.is_main():
        Path(out).write_text(json.dumps([[h.train_loss, h.val_loss] for h in result.history]))


def _rank(rank: int, port: int, *args) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), IATROS_THREADS="1",
                      IATROS_DIST_TIMEOUT="120")  # a stuck collective fails the test, not CI
    torch.set_num_threads(1)
    _fit(*args)
    distributed.close()


def _two_processes(*args) -> None:
    mp.spawn(_rank, args=(_free_port(), *args), nprocs=2)


@given(st.lists(st.integers(0, 1000), min_size=2, max_size=64, unique=True),
       st.integers(1, 8))
def test_each_global_batch_is_cut_into_contiguous_slices_one_per_rank(batch, size):
    if len(batch) < size:
        with pytest.raises(ConfigError, match="cannot be shared"):
            distributed.rank_slices(batch, size)
        return
    slices = distributed.rank_slices(batch, size)
    assert [i for part in slices for i in part] == batch
    assert min(map(len, slices)) >= 1 and max(map(len, slices)) - min(map(len, slices)) <= 1


def test_launcher_options_stay_out_of_the_command_each_process_runs():
    argv = ["train", "t", "--nproc", "2", "--nnodes=2", "--rdzv", "h:1", "--node-rank", "1",
            "--rdzv-timeout", "9", "--epochs", "3"]
    assert distributed.strip_launch_options(argv) == ["train", "t", "--epochs", "3"]
    one_node = distributed.launch_command(["train", "t"], 2)
    assert "--standalone" in one_node and one_node[-4:] == ["-m", "iatros.cli", "train", "t"]
    nodes = distributed.launch_command(["train", "t"], 2, nnodes=3, node_rank=1, rdzv="h:29400")
    assert nodes[nodes.index("--rdzv-endpoint"):][:2] == ["--rdzv-endpoint", "h:29400"]
    with pytest.raises(ConfigError, match="--rdzv HOST:PORT"):
        distributed.launch_command(["train", "t"], 2, nnodes=2)


def test_two_processes_follow_the_one_process_curve_and_resume_where_they_stopped(tmp_path):
    _fit(str(tmp_path / "one.json"), None, epochs=4)
    _two_processes(str(tmp_path / "two.json"), str(tmp_path / "a"), 4)
    one = np.array(json.loads((tmp_path / "one.json").read_text()))
    two = np.array(json.loads((tmp_path / "two.json").read_text()))
    assert one.shape == two.shape == (4, 2)
    np.testing.assert_allclose(two, one, rtol=1e-4)  # same global batch: same curve
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.pt", "last.pt"]
    with pytest.raises(mp.ProcessRaisedException, match="crash after epoch 2"):
        _two_processes(str(tmp_path / "first.json"), str(tmp_path / "b"), 4, False, 2)
    _two_processes(str(tmp_path / "resumed.json"), str(tmp_path / "b"), 4, True)
    resumed = np.array(json.loads((tmp_path / "resumed.json").read_text()))
    np.testing.assert_allclose(resumed, two, rtol=1e-4)


def _cli(*args: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "IATROS_HOME": str(home), "IATROS_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src"), "IATROS_DIST_TIMEOUT": "120"}
    return subprocess.Popen([sys.executable, "-m", "iatros.cli", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _worker_of_rank(rank: int, run: Path) -> int | None:
    """The pid of the torchrun worker of `rank` training into `run`."""
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b" ".join(env) \
                and str(run).encode() in cmd:
            return int(proc.name)
    return None


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.2)


def test_train_nproc_2_writes_one_run_and_a_killed_rank_resumes(tmp_path):
    run = tmp_path / "run"
    args = ("breast-cancer-wdbc", "--model", "mlp", "--epochs", "40", "--nproc", "2",
            "--n-boot", "20", "--out", str(run),
            "--param", "patience=0", "--param", "batch_size=32")
    first = _cli(*args, home=tmp_path / "home")
    _wait_for(run / "checkpoints" / "last.pt", first)
    pid = _worker_of_rank(1, run)
    assert pid is not None, "rank 1's process was not found"
    os.kill(pid, signal.SIGKILL)
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0
    assert "--resume --out" in err, err[-2000:]
    done = json.loads((run / "status.json").read_text())
    assert done["state"] in ("running", "failed")
    again = _cli(*args, "--resume", home=tmp_path / "home")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert out.strip().splitlines()[-1] == str(run)
    log = (run / "train_log.csv").read_text().splitlines()
    assert len(log) == 1 + 40  # header, then every epoch once: resumed where the kill left it
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "complete" and status["registered"] is True


def test_a_rendezvous_nobody_answers_fails_with_a_clear_error(tmp_path):
    proc = _cli("breast-cancer-wdbc", "--model", "mlp", "--nproc", "1", "--nnodes", "2",
                "--node-rank", "1", "--rdzv", f"127.0.0.1:{_free_port()}", "--rdzv-timeout", "1",
                "--out", str(tmp_path / "run"),
                home=tmp_path / "home")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "before any checkpoint was written" in err and "--rdzv" in err


def test_multi_node_training_needs_one_named_run_folder_and_one_model():
    with pytest.raises(ConfigError, match="needs --out RUN"):
        api.train_distributed(["train", "breast-cancer-wdbc"], "breast-cancer-wdbc", nproc=1,
                              nnodes=2, rdzv="127.0.0.1:1")
    with pytest.raises(ConfigError, match="--model NAME"):
        api.train_distributed(["train", "breast-cancer-wdbc"], "breast-cancer-wdbc", nproc=2,
                              model="auto")
    with pytest.raises(ConfigError, match="trains torch networks"):
        api.train_distributed(["train", "breast-cancer-wdbc"], "breast-cancer-wdbc", nproc=2,
                              model="logreg")


def test_node_options_without_nproc_are_refused(capsys):
    from tests.cli_run import run_cli

    code, _, err = run_cli(capsys, "train", "breast-cancer-wdbc", "--nnodes", "2")
    assert code == 2 and "take effect" in err and "--nproc" in err
