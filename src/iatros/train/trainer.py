"""The one training loop for every torch model in iatros.

Mini-batches, AdamW/SGD, cosine or plateau schedules, early stopping on a validation score,
best-checkpoint selection, resume after a crash, seeds, progress bars, CPU or GPU with mixed
precision, and data-parallel training across processes (`train.distributed`: each global batch
split between the ranks, DistributedDataParallel, validation gathered so every rank decides
alike, checkpoints written by rank 0). Data arrive as torch Datasets whose items are
(inputs, target); inputs may be a tensor or a dict of tensors, and the model is called as
`model(inputs)`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from iatros.errors import ConfigError, RunError
from iatros.train import distributed
from iatros.train.seed import rng_state, seed_everything, set_rng_state

Monitor = Callable[[np.ndarray, np.ndarray], float]
SCHEDULERS = ("cosine", "warmup", "plateau", "none")


@dataclass
class TrainConfig:
    """Settings of one training run; stored in the checkpoint so a resume uses the same ones."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    scheduler: str = "cosine"  # cosine | warmup (linear warm-up, exponential decay) | plateau | none
    warmup_epochs: int = 2  # the `warmup` schedule: epochs from lr / 10 up to lr
    patience: int = 10
    min_delta: float = 0.0
    grad_clip: float | None = 5.0
    seed: int = 0
    deterministic: bool = True
    amp: bool | None = None
    num_workers: int = 0
    progress: bool = True
    ema_decay: float = 0.0
    keep: str = "best"
    dp_epsilon: float | None = None  # differential privacy (Opacus DP-SGD): the target epsilon
    dp_delta: float | None = None  # default 1 / (10 x training rows)
    max_grad_norm: float = 1.0  # DP-SGD: each example's gradient is clipped to this norm
    # DP-SGD with a noise multiplier fixed by the caller (federated rounds calibrate it for all
    # their local epochs together); None: calibrated here for `epochs` to spend `dp_epsilon`
    dp_noise_multiplier: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"epochs, batch_size and lr must be positive: {self}")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ConfigError(f"optimizer must be adamw, adam or sgd, not {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {', '.join(SCHEDULERS)}, not "
                              f"{self.scheduler!r}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, not {self.warmup_epochs}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), not {self.momentum}")
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep must be 'best' (early stopping) or 'last', not {self.keep!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if self.dp_epsilon is not None and not self.dp_epsilon > 0:
            raise ConfigError(f"dp_epsilon must be positive, not {self.dp_epsilon}")
        if self.dp_delta is not None and not 0 < self.dp_delta < 1:
            raise ConfigError(f"dp_delta must be in (0, 1), not {self.dp_delta}")
        if not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive, not {self.max_grad_norm}")


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    stopped_early: bool
    resumed_from: int
    history: list[EpochRecord] = field(default_factory=list)
    privacy: dict[str, Any] | None = None  # differentially private runs: what was spent


class Callback:
    """Hooks called by the Trainer; override what you need."""

    def on_epoch_end(self, trainer: Trainer, record: EpochRecord) -> None:
        """Called after the epoch's checkpoint is safely on disk."""


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors inside dicts/lists/tuples, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file then rename, so a crash never leaves a torn checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint as tensors and plain values: `weights_only=True`, so a crafted file cannot
    run code; a truncated, foreign or unsafe file is a RunError naming it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, foreign, or holding objects the safe loader refuses
        raise RunError(f"cannot read checkpoint {path} safely ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200]}); it is damaged or was not written by "
                       f"iatros: retrain, or restore the file") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RunError(f"checkpoint {path} holds no model weights")
    return ckpt


class Trainer:
    """Fits a model; with `checkpoint_dir`, saves last.pt every epoch and best.pt on improvement."""

    def __init__(self, config: TrainConfig, device: str = "cpu",
                 checkpoint_dir: Path | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.config = config
        self.device = torch.device(device)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.callbacks = list(callbacks)
        self._best_in_memory: dict[str, torch.Tensor] | None = None
        self.main = True  # rank 0 (or the only process): writes checkpoints, calls callbacks
        self._ema: Any = None
        amp = config.amp if config.amp is not None else self.device.type == "cuda"
        if amp and self.device.type == "cpu" and not cpu_has_native_bf16():
            amp = False  # bf16 emulated on this CPU: an order of magnitude slower than float32
        self.amp_dtype: torch.dtype | None = None
        if amp:
            bf16 = self.device.type == "cpu" or torch.cuda.is_bf16_supported()
            self.amp_dtype = torch.bfloat16 if bf16 else torch.float16

    # -- public -------------------------------------------------------------------------------
    def fit(self, model: nn.Module, loss_fn: nn.Module, train_set: Dataset, val_set: Dataset,
            monitor: Monitor | None = None, mode: str = "max", resume: bool = False,
            ) -> TrainResult:
        """Train until `epochs` or early stopping; leaves the best weights loaded in `model`
        (with `keep="last"`: no early stopping, the final epoch's weights).

        `monitor(val_outputs, val_targets)` scores an epoch (higher is better when mode="max");
        without one, validation loss is used. A NaN score counts as no improvement.
        """
        cfg = self.config
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', not {mode!r}")
        if monitor is None:
            mode = "min"
        seed_everything(cfg.seed, cfg.deterministic)
        model.to(self.device)
        loss_fn.to(self.device)
        optimizer = self._optimizer(model)
        private = None
        rank, size = distributed.world()
        self.main = rank == 0
        if size > 1 and cfg.dp_epsilon is not None:
            raise ConfigError("differential privacy trains in one process: drop --nproc (DP-SGD "
                              "clips and noises each example's gradient, which data-parallel "
                              "averaging does not account for)")
        if cfg.dp_epsilon is not None:
            private = PrivateTraining(self, model, optimizer, train_set, resume)
            optimizer = private.optimizer
        scheduler = self._scheduler(optimizer)
        scaler = torch.amp.GradScaler(enabled=self.amp_dtype is torch.float16)
        self._ema = self._make_ema(model)
        state = {"epoch": 0, "best_score": -math.inf if mode == "max" else math.inf,
                 "best_epoch": 0, "bad_epochs": 0, "history": []}
        if resume:
            state = self._restore(model, optimizer, scheduler, scaler)
        start = state["epoch"]
        history = [EpochRecord(**r) for r in state["history"]]
        stopped = bool(cfg.patience and state["bad_epochs"] >= cfg.patience)  # stopped before a crash
        bar = tqdm(range(start, cfg.epochs), desc="train", unit="epoch", initial=start,
                   total=cfg.epochs, disable=not (cfg.progress and self.main), leave=False)
        forward = self._data_parallel(model) if size > 1 else model
        for epoch in bar:
            if stopped:
                break
            t0 = time.perf_counter()
            train_loss = self._train_epoch(model, loss_fn, train_set, optimizer, scaler, epoch,
                                           private, forward)
            scored = self._ema.module if self._ema is not None else model
            outputs, targets, val_loss = self._evaluate(scored, loss_fn, val_set,
                                                        shard=size > 1)
            score = monitor(outputs, targets) if monitor is not None else val_loss
            if scheduler is not None:
                if cfg.scheduler == "plateau":
                    scheduler.step(score if math.isfinite(score) else 0.0)
                else:
                    scheduler.step()
            record = EpochRecord(epoch + 1, train_loss, val_loss, float(score),
                                 optimizer.param_groups[0]["lr"], time.perf_counter() - t0)
            history.append(record)
            improved = cfg.keep == "last" or self._improved(score, state["best_score"], mode)
            if improved:
                state.update(best_score=float(score), best_epoch=epoch + 1, bad_epochs=0)
                self._save_best(scored, epoch + 1, float(score))
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            state["history"] = [asdict(r) for r in history]
            self._save_last(model, optimizer, scheduler, scaler, state)
            bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{score:.4f}")
            for cb in self.callbacks if self.main else ():
                cb.on_epoch_end(self, record)
            if cfg.patience and state["bad_epochs"] >= cfg.patience:
                stopped = True
                break
        bar.close()
        privacy = private.close() if private is not None else None
        if self.main:  # the other ranks' weights are not used after training
            self._load_best(model)
        return TrainResult(best_epoch=state["best_epoch"], best_score=state["best_score"],
                           epochs_run=state["epoch"], stopped_early=stopped, resumed_from=start,
                           history=history, privacy=privacy)

    @torch.no_grad()
    def predict(self, model: nn.Module, dataset: Dataset) -> np.ndarray:
        """Raw model outputs (logits) for every item, in order."""
        outputs, _, _ = self._evaluate(model, None, dataset)
        return outputs

    # -- internals ----------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, shuffle: bool, epoch: int = 0,
                **options: Any) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        options = {"num_workers": self.config.num_workers,
                   "pin_memory": self.device.type == "cuda", **options}
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=shuffle,
                          generator=generator,
                          drop_last=shuffle and len(dataset) > self.config.batch_size, **options)

    def _rank_loader(self, dataset: Dataset, epoch: int) -> DataLoader:
        """This rank's part of each training batch: the one-process loader's batches (same
        seed, same order), each cut into one slice per rank."""
        rank, size = distributed.world()
        order = self._loader(_Positions(len(dataset)), shuffle=True, epoch=epoch, num_workers=0,
                             pin_memory=False, collate_fn=list)
        # iterated as _train_epoch iterates a loader: tqdm.auto opens one extra iterator, which
        # draws once from the loader's generator, and the one-process order depends on that
        batches = distributed.shard_batches(tqdm(order, disable=True), rank, size)
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.config.num_workers,
                          pin_memory=self.device.type == "cuda")

    def _data_parallel(self, model: nn.Module) -> nn.Module:
        """The model wrapped in DistributedDataParallel (gradients averaged across ranks)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.amp_dtype,
                              enabled=self.amp_dtype is not None)

    def _train_epoch(self, model: nn.Module, loss_fn: nn.Module, dataset: Dataset,
                     optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     epoch: int, private: PrivateTraining | None = None,
                     forward: nn.Module | None = None) -> float:
        model.train()
        total, count = 0.0, 0
        if private:
            loader, forward = private.loader, private.module
        elif distributed.world()[1] > 1:
            loader = self._rank_loader(dataset, epoch)
        else:
            loader = self._loader(dataset, shuffle=True, epoch=epoch)
        forward = forward or model
        for inputs, target in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False,
                                   disable=not (self.config.progress and self.main)):
            if private and len(target) == 0:
                continue  # Poisson sampling can draw an empty batch
            inputs, target = to_device(inputs, self.device), to_device(target, self.device)
            optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss = loss_fn(forward(inputs), target)
                penalty = model.penalty() if hasattr(model, "penalty") else None
                if penalty is not None:
                    loss = loss + penalty
            if not torch.isfinite(loss):
                raise RunError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                               f"lower the learning rate or check the inputs for extreme values")
            scaler.scale(loss).backward()
            if self.config.grad_clip and private is None:  # DP-SGD clips each example instead
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if self._ema is not None:
                self._ema.update_parameters(model)
            n = len(target)
            total += loss.item() * n
            count += n
        total, count = distributed.all_sum([total, count], self.device)
        return total / max(count, 1)

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, loss_fn: nn.Module | None, dataset: Dataset,
                  shard: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
        """Outputs, targets and mean loss over `dataset`; with `shard`, each rank scores one
        contiguous part and every rank receives all of them, in order."""
        rank, size = distributed.world()
        if shard and size > 1 and len(dataset) >= size:
            parts = np.array_split(np.arange(len(dataset)), size)
            out, tgt, loss = self._evaluate(model, loss_fn, Subset(dataset, parts[rank].tolist()))
            sizes = [len(p) for p in parts]
            total, count = distributed.all_sum([loss * len(parts[rank]), len(parts[rank])],
                                               self.device)
            return (distributed.gather_rows(out, sizes, self.device),
                    distributed.gather_rows(tgt, sizes, self.device),
                    total / count if loss_fn is not None else float("nan"))
        model.to(self.device)
        model.eval()
        outputs, targets, total, count = [], [], 0.0, 0
        for inputs, target in self._loader(dataset, shuffle=False):
            inputs, target = to_device(inputs, self.device), to_device(target, self.device)
            with self._autocast():
                out = model(inputs)
            if loss_fn is not None:
                total += loss_fn(out.float(), target).item() * len(target)
                count += len(target)
            outputs.append(out.float().cpu().numpy())
            targets.append(target.cpu().numpy())
        if not outputs:
            raise ConfigError("cannot evaluate on an empty dataset")
        return (np.concatenate(outputs), np.concatenate(targets),
                total / count if count else float("nan"))

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        if self.config.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.config.epochs)
        if self.config.scheduler == "warmup":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_decay(
                self.config.warmup_epochs, self.config.epochs))
        if self.config.scheduler == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=3)
        return None

    def _make_ema(self, model: nn.Module) -> Any:
        """An exponential moving average of the weights (and BN buffers), validated instead of the
        raw weights when `ema_decay` > 0: smoother than any single epoch on small data."""
        if not self.config.ema_decay:
            return None
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay),
                             use_buffers=True)

    def _improved(self, score: float, best: float, mode: str) -> bool:
        if not math.isfinite(score):
            return False
        delta = self.config.min_delta
        return score > best + delta if mode == "max" else score < best - delta

    def _path(self, name: str) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        if not self.main:
            return self.checkpoint_dir / name  # read-only on the ranks that do not write
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self.checkpoint_dir / name

    def _save_best(self, model: nn.Module, epoch: int, score: float) -> None:
        if not self.main:
            return
        path = self._path("best.pt")
        if path is None:
            self._best_in_memory = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        atomic_save({"model": model.state_dict(), "epoch": epoch, "score": score}, path)

    def _load_best(self, model: nn.Module) -> None:
        path = self._path("best.pt")
        if path is not None and path.exists():
            model.load_state_dict(load_checkpoint(path)["model"])
        elif self._best_in_memory is not None:
            model.load_state_dict(self._best_in_memory)

    def _save_last(self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                   state: dict[str, Any]) -> None:
        path = self._path("last.pt")
        if path is None or not self.main:
            return
        atomic_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(), "state": state, "rng": rng_state(),
            "ema": self._ema.state_dict() if self._ema is not None else None,
            "config": asdict(self.config),
        }, path)

    def _restore(self, model: nn.Module, optimizer: Any, scheduler: Any,
                 scaler: Any) -> dict[str, Any]:
        path = self._path("last.pt")
        if path is None or not path.exists():
            raise RunError(f"nothing to resume: no checkpoint at "
                           f"{path or 'an in-memory trainer'}; start the run without --resume")
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if self._ema is not None and ckpt.get("ema") is not None:
            self._ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"])
        return ckpt["state"]


class _Positions(Dataset):
    """0..n-1: drawn through the training loader to learn its batch order without the data."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class PrivateTraining:
    """DP-SGD with Opacus for one fit: per-example gradients clipped to `max_grad_norm`, Gaussian
    noise calibrated so that the planned epochs spend at most `dp_epsilon` (with `dp_delta`),
    batches drawn by Poisson sampling; the accountant (PRV) reports what was actually spent."""

    def __init__(self, trainer: Trainer, model: nn.Module, optimizer: torch.optim.Optimizer,
                 train_set: Dataset, resume: bool) -> None:
        cfg = trainer.config
        try:
            from opacus import PrivacyEngine
            from opacus.validators import ModuleValidator
        except ImportError:
            raise ConfigError("--dp-epsilon needs Opacus: pip install \"iatros[privacy]\"") from None
        if resume:
            raise ConfigError("a differentially private run cannot be resumed (the privacy "
                              "accountant's history is not in last.pt); start it again")
        if cfg.ema_decay:
            raise ConfigError("ema_decay is not supported with differential privacy")
        errors = ModuleValidator.validate(model, strict=False)
        if errors:
            shown = "; ".join(str(e).splitlines()[0][:160] for e in errors[:3])
            raise ConfigError(f"{type(model).__name__} cannot be trained with differential "
                              f"privacy: {shown}. Use a model without batch norm (e.g. mlp, "
                              f"logistic-hazard)")
        trainer.amp_dtype = None  # per-example gradients in full precision
        self.delta = cfg.dp_delta or 1.0 / (10 * len(train_set))
        self.engine = PrivacyEngine(accountant="prv", secure_mode=False)
        loader = trainer._loader(train_set, shuffle=True)
        if cfg.dp_noise_multiplier is not None:
            self.module, self.optimizer, self.loader = self.engine.make_private(
                module=model, optimizer=optimizer, data_loader=loader,
                noise_multiplier=cfg.dp_noise_multiplier, max_grad_norm=cfg.max_grad_norm,
                poisson_sampling=True)
        else:
            self.module, self.optimizer, self.loader = self.engine.make_private_with_epsilon(
                module=model, optimizer=optimizer, data_loader=loader,
                target_epsilon=cfg.dp_epsilon, target_delta=self.delta, epochs=cfg.epochs,
                max_grad_norm=cfg.max_grad_norm, poisson_sampling=True)
        self.target = cfg.dp_epsilon
        self.max_grad_norm = cfg.max_grad_norm

    def close(self) -> dict[str, Any]:
        """Remove Opacus' hooks from the network; the privacy spent, for metrics.json."""
        epsilon = float(self.engine.get_epsilon(self.delta))
        remove = getattr(self.module, "remove_hooks", None) or getattr(self.module, "_close", None)
        if remove is not None:
            remove()
        return {"mechanism": "DP-SGD (Opacus), sample-level", "accountant": "prv",
                "epsilon": round(epsilon, 4), "delta": self.delta, "target_epsilon": self.target,
                "noise_multiplier": round(float(self.optimizer.noise_multiplier), 6),
                "max_grad_norm": self.max_grad_norm,
                "sample_rate": round(float(getattr(self.loader, "sample_rate", 0.0)), 6),
                "steps": int(sum(n for _, _, n in self.engine.accountant.history))}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 / AMX), so mixed precision
    speeds CPU training up; elsewhere oneDNN emulates it (measured 13x slower on a 2-core
    AVX2 machine: ResNet-18, batch 128, 28 px)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def warmup_decay(warmup: int, epochs: int, floor: float = 0.1) -> Callable[[int], float]:
    """Learning-rate factor per epoch: linear from `floor` to 1 over `warmup` epochs, then
    exponential down to `floor` at the last epoch (the shape of chemprop's Noam schedule)."""
    decay_epochs = max(epochs - warmup, 1)

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return floor + (1.0 - floor) * epoch / warmup
        return float(floor ** (min(epoch - warmup, decay_epochs) / decay_epochs))

    return factor
