"""Data-parallel training on torch.distributed, launched by torchrun.

`iatros train TASK --nproc N` starts N copies of the same `iatros train` under torchrun (gloo on
CPU, NCCL on GPU). Every rank loads the same data and split; the Trainer splits each global batch
of the one-process run into N slices (so N processes see the same batches in the same order as
one process with the same batch size) and DistributedDataParallel averages the gradients. Rank 0
alone writes the run folder, checkpoints and report; every rank takes the same early-stopping
decisions because the validation outputs are gathered on all of them. Nothing is pickled between
processes: only tensors travel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from iatros.errors import ConfigError, RunError

DEFAULT_TIMEOUT_S = 1800  # a collective that waits longer than this fails instead of hanging
LAUNCH_OPTIONS = ("--nproc", "--nnodes", "--node-rank", "--rdzv", "--rdzv-timeout")


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes the run folder (rank 0, or the only process)."""
    return world()[0] == 0


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def init_from_env(device: str) -> str:
    """Join the process group torchrun prepared (once); the device this rank trains on (CUDA:
    the GPU of its local rank)."""
    if not launched():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if dist.is_initialized():
        return device
    timeout = timedelta(seconds=float(os.environ.get("IATROS_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    except Exception as e:  # a rendezvous or store that does not answer
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise RunError(f"rank {os.environ.get('RANK', '?')} could not join the process group at "
                       f"{where} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); check that "
                       f"every node can reach it") from e
    return device


def close() -> None:
    """Leave the process group (at the end of a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_slices(batch: Sequence[int], size: int) -> list[list[int]]:
    """One global batch cut into `size` contiguous slices, as even as possible (rank r trains
    on slice r); every slice holds at least one row."""
    if len(batch) < size:
        raise ConfigError(f"a batch of {len(batch)} rows cannot be shared by {size} processes; "
                          f"use a batch size of at least {size} or fewer processes")
    return [list(part) for part in np.array_split(np.asarray(batch, dtype=np.int64), size)]


def shard_batches(batches: Iterable[Sequence[int]], rank: int, size: int) -> list[list[int]]:
    """This rank's slice of each global batch, in order."""
    return [[int(i) for i in rank_slices(b, size)[rank]] for b in batches]


def all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (the values themselves with one process)."""
    if world()[1] == 1:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_rows(part: np.ndarray, sizes: Sequence[int], device: torch.device) -> np.ndarray:
    """Every rank's rows joined in rank order; `sizes` are the row counts of all ranks (known to
    each rank in advance, so only tensors are exchanged)."""
    if world()[1] == 1:
        return part
    width = part.shape[1:]
    longest = max(sizes)
    padded = torch.zeros((longest, *width), dtype=torch.float64, device=device)
    padded[: len(part)] = torch.as_tensor(part, dtype=torch.float64, device=device)
    pieces = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(pieces, padded)
    joined = np.concatenate([p[:n].cpu().numpy() for p, n in zip(pieces, sizes, strict=True)])
    return joined.astype(part.dtype, copy=False)


def launch_command(argv: Sequence[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
                   rdzv: str | None = None, rdzv_timeout: int = 300) -> list[str]:
    """The torchrun command that runs `iatros ARGV` as `nproc` processes per node: standalone on
    one node, else a c10d rendezvous at HOST:PORT shared by `nnodes` nodes."""
    if nproc < 1 or nnodes < 1:
        raise ConfigError(f"--nproc and --nnodes must be at least 1 (got {nproc}, {nnodes})")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if nnodes == 1 and rdzv is None:
        command.append("--standalone")
    else:
        if rdzv is None or ":" not in rdzv:
            raise ConfigError(f"--nnodes {nnodes} needs --rdzv HOST:PORT, the address of the "
                              f"first node that every node can reach (got {rdzv!r})")
        command += ["--nnodes", str(nnodes), "--node-rank", str(node_rank),
                    "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv,
                    "--rdzv-conf", f"join_timeout={int(rdzv_timeout)}",
                    "--rdzv-id", "iatros"]
    return [*command, "-m", "iatros.cli", *argv]


def strip_launch_options(argv: Sequence[str]) -> list[str]:
    """The command line without the options that only the launcher reads."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def launch(argv: Sequence[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
           rdzv: str | None = None, rdzv_timeout: int = 300, threads: int | None = None) -> int:
    """Run `iatros ARGV` under torchrun and wait; its exit status. Each process gets an even
    share of the CPU cores as its torch threads unless IATROS_THREADS says otherwise."""
    env = dict(os.environ)
    if "IATROS_THREADS" not in env:
        env["IATROS_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // nproc))
    env.setdefault("OMP_NUM_THREADS", env["IATROS_THREADS"])
    command = launch_command(strip_launch_options(argv), nproc, nnodes, node_rank, rdzv,
                             rdzv_timeout)
    return subprocess.run(command, env=env).returncode
