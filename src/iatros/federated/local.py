"""What one site does in a federated run, with the same Task, ModelSpec, head and Trainer as
`iatros train`: load its patients, fit the model's input preprocessing on them, train the
global weights for a few local epochs, and score a global model on its own patients.

No Flower here: `federated.apps` carries these steps in Flower messages."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iatros.errors import ConfigError
from iatros.evaluate import metrics as M
from iatros.federated.sites import SiteRows, site_labels, site_problems, site_rows
from iatros.models.registry import ModelSpec
from iatros.pipeline.fit import check_model, monitor, train_config
from iatros.pipeline.runs import run_split, settings_for, task_for
from iatros.tasks import Task, TaskData
from iatros.train.heads import head_for
from iatros.train.losses import to_probabilities
from iatros.train.predictors import make_dataset
from iatros.train.seed import seed_everything
from iatros.train.trainer import Trainer

SUPPORTED_KINDS = ("binary", "multiclass", "multilabel", "ordinal", "regression")


@dataclass
class Plan:
    """Everything a site needs to train its share, sent by the server in every message: the
    task, the model and its parameters, the seed, the Trainer's settings for local epochs."""

    task: str
    model: str
    seed: int = 0
    sites: str = ""
    task_options: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    local_epochs: int = 1
    min_site_patients: int = 20
    n_boot: int = 1000
    rounds: int = 1  # patient-level DP: the noise is calibrated for all rounds' local epochs
    dp_epsilon: float | None = None  # patient-level DP (DP-SGD at each site); None: off
    dp_delta: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))


_LOADED: dict[tuple[str, str, str], tuple[Task, TaskData]] = {}


def load_task(plan: Plan, data_root: str | Path) -> tuple[Task, TaskData]:
    """The task and its records at this data root, loaded once per process (a site's ClientApp
    answers many messages)."""
    key = (plan.task, json.dumps(plan.task_options, sort_keys=True), str(data_root))
    if key not in _LOADED:
        settings = settings_for(None).with_data_root(data_root)
        task = task_for(plan.task, plan.task_options, settings)
        _LOADED[key] = task, task.load(settings.data_root)
    return _LOADED[key]


def local_site(plan: Plan, task: Task, data: TaskData, site: str | None) -> SiteRows:
    """This site's rows: those whose `plan.sites` label is `site`, or every record at this
    data root when the site holds only its own (`site` None). The split is the task's own,
    by patient, with the run's seed."""
    split = run_split(task, data, plan.seed)
    if site is None:
        return SiteRows("local", split.train, split.val, split.test)
    labels = site_labels(data, plan.sites, plan.seed)
    for rows in site_rows(labels, split):
        if rows.label == site:
            return rows
    raise ConfigError(f"site {site!r} has no records for --sites {plan.sites!r} at this data root; "
                      f"sites there: {', '.join(sorted(set(labels))[:20])}")


def exchanged_keys(network: nn.Module) -> list[str]:
    """The entries of the state dict that training changes and the server aggregates: the
    parameters and batch-norm running statistics. Other buffers (imputation, scaling) are fixed
    once from every site's statistics before the first round."""
    keys = [name for name, _ in network.named_parameters()]
    for prefix, module in network.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            keys += [f"{prefix}.{b}" if prefix else b for b in ("running_mean", "running_var")
                     if getattr(module, b, None) is not None]
    return keys


class Proximal(nn.Module):
    """FedProx's local objective: the network's loss plus mu/2 times the squared distance of
    its parameters from the round's global ones (added through the Trainer's `penalty()` hook)."""

    def __init__(self, network: nn.Module, mu: float) -> None:
        super().__init__()
        self.network = network
        self.mu = mu
        self.anchor = [p.detach().clone() for p in network.parameters()]

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.network(inputs)

    def penalty(self) -> torch.Tensor | None:
        own = self.network.penalty() if hasattr(self.network, "penalty") else None
        distance = sum(((p - a) ** 2).sum() for p, a in zip(self.network.parameters(), self.anchor,
                                                              strict=True))
        term = 0.5 * self.mu * distance
        return term if own is None else own + term


class SiteModel:
    """The run's network at one site: built exactly as `iatros train` builds it."""

    def __init__(self, plan: Plan, task: Task, data: TaskData, rows: SiteRows,
                 device: str = "cpu") -> None:
        if task.target.value not in SUPPORTED_KINDS:
            raise ConfigError(f"federated training supports {', '.join(SUPPORTED_KINDS)} targets; "
                              f"task {task.name} predicts {task.target.value}")
        self.plan, self.task, self.data, self.rows, self.device = plan, task, data, rows, device
        self.spec: ModelSpec = check_model(task, plan.model)
        if self.spec.family != "torch":
            raise ConfigError(f"federated training exchanges network weights; {plan.model!r} is a "
                              f"{self.spec.family} model (choose e.g. --model mlp)")
        self.params = {**self.spec.params, **task.model_params, **plan.params}
        x_train = data.inputs[rows.train]
        self.n_inputs = (self.spec.n_inputs(x_train, self.params) if self.spec.n_inputs
                         else int(np.asarray(x_train).shape[1]))
        self.head = head_for(task.target)
        self.width = self.head.outputs(self.spec, len(task.classes))
        self.network = build_network(self.spec, task, self.n_inputs, self.width, self.params,
                                     plan.seed)
        self.keys = exchanged_keys(self.network)

    def problems(self) -> list[str]:
        return site_problems(self.rows, self.data.targets, self.data.patient_ids, self.task.target,
                             self.plan.min_site_patients)

    def prepare(self) -> dict[str, np.ndarray]:
        """The model's input preprocessing fitted on this site's training rows (the buffers
        that are not exchanged), for the server to average over sites."""
        if self.spec.prepare is not None:
            self.spec.prepare(self.network, self.data.inputs[self.rows.train])
        state = self.network.state_dict()
        return {k: v.detach().cpu().numpy() for k, v in state.items() if k not in self.keys}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Set the network's weights (any subset of its state dict) from arrays."""
        state = self.network.state_dict()
        unknown = sorted(set(arrays) - set(state))
        if unknown:
            raise ConfigError(f"global model arrays do not fit model {self.plan.model!r}: "
                              f"unknown entries {unknown[:5]}")
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.size == state[name].numel():  # a 0-d entry travels as shape (1,)
                value = value.reshape(tuple(state[name].shape))
            if tuple(state[name].shape) != value.shape:
                raise ConfigError(f"global model entry {name} has shape {np.shape(value)}, the "
                                  f"site's network expects {tuple(state[name].shape)}")
            state[name] = torch.as_tensor(value, dtype=state[name].dtype)
        self.network.load_state_dict(state)

    def trainable(self) -> dict[str, np.ndarray]:
        state = self.network.state_dict()
        return {k: state[k].detach().cpu().numpy().copy() for k in self.keys}

    def private(self) -> dict[str, Any] | None:
        """Patient-level DP at this site: DP-SGD (Opacus) in every local epoch of every round,
        the noise calibrated so that all of them together spend at most `dp_epsilon` (the
        aggregation after them is post-processing). None when the plan asks no DP."""
        if self.plan.dp_epsilon is None:
            return None
        from opacus.accountants.utils import get_noise_multiplier

        config = train_config(self.spec, self.task, 1, self.plan.seed, False,
                              {**self.plan.train, "dp_epsilon": self.plan.dp_epsilon})
        n = len(self.rows.train)
        rate = min(1.0, config.batch_size / n)
        delta = self.plan.dp_delta or 1.0 / (10 * n)
        steps = int(self.plan.rounds * self.plan.local_epochs * np.ceil(1 / rate))
        noise = float(get_noise_multiplier(target_epsilon=self.plan.dp_epsilon, target_delta=delta,
                                           sample_rate=rate, steps=steps, accountant="prv"))
        return {"noise_multiplier": noise, "sample_rate": rate, "delta": delta, "steps": steps,
                "max_grad_norm": config.max_grad_norm}

    def privacy_spent(self) -> dict[str, Any] | None:
        """The epsilon this site's patients have spent once every round has run (PRV
        accountant over all local DP-SGD steps)."""
        settings = self.private()
        if settings is None:
            return None
        from opacus.accountants import PRVAccountant

        accountant = PRVAccountant()
        accountant.history = [(settings["noise_multiplier"], settings["sample_rate"],
                               settings["steps"])]
        return {**settings, "epsilon": float(accountant.get_epsilon(settings["delta"])),
                "target_epsilon": self.plan.dp_epsilon}

    def train(self, proximal_mu: float = 0.0, round_number: int = 1) -> dict[str, float]:
        """Local epochs on this site's training rows with the one Trainer (no early stopping:
        every site trains the same number of epochs). Returns the mean training loss."""
        overrides = {**self.plan.train, "keep": "last", "patience": 0}
        private = self.private()
        if private is not None:
            overrides.update(dp_epsilon=self.plan.dp_epsilon, dp_delta=private["delta"],
                             dp_noise_multiplier=private["noise_multiplier"])
        config = train_config(self.spec, self.task, self.plan.local_epochs, self.plan.seed,
                              False, overrides)
        config = replace(config, seed=self.plan.seed * 1_000 + round_number, scheduler="none")
        score, mode = monitor(self.task)
        x, y = self.data.inputs[self.rows.train], self.data.targets[self.rows.train]
        loss_fn, score, mode = self.head.setup(self.spec, self.network, y, self.params,
                                               bool(self.task.train_params.get("balance", False)),
                                               score, mode)
        model = Proximal(self.network, proximal_mu) if proximal_mu > 0 else self.network
        trainer = Trainer(config, device=self.device)
        result = trainer.fit(model, loss_fn,
                             make_dataset(self.spec, x, y, self.task.target, train=True,
                                          params=self.params),
                             self._dataset("val"), monitor=score, mode=mode)
        self.network.to("cpu")
        last = result.history[-1]
        return {"train_loss": float(last.train_loss), "val_loss": float(last.val_loss),
                "val_metric": float(last.val_metric)}

    def _dataset(self, part: str) -> Any:
        rows = getattr(self.rows, part)
        return make_dataset(self.spec, self.data.inputs[rows], self.data.targets[rows],
                            self.task.target, train=False, params=self.params)

    def scores(self, part: str) -> np.ndarray:
        """The network's probabilities (or values) for this site's rows of one part."""
        config = train_config(self.spec, self.task, 1, self.plan.seed, False, self.plan.train)
        trainer = Trainer(config, device=self.device)
        outputs = trainer.predict(self.network, self._dataset(part))
        self.network.to("cpu")
        return to_probabilities(outputs, self.task.target)

    def evaluate(self, part: str, intervals: bool = False) -> dict[str, Any]:
        """The task's metrics on this site's patients of `part`, with patient-level bootstrap
        intervals when asked (the final test): computed at the site, only numbers leave it."""
        rows = getattr(self.rows, part)
        y = self.data.targets[rows]
        p = self.scores(part)
        if not intervals:
            return {"n": int(len(rows)),
                    self.task.primary_metric: M.score(self.task.primary_metric, y, p,
                                                      self.task.target)}
        return M.evaluate(y, p, self.task.target, metrics=self.task.metrics or None,
                          n_boot=self.plan.n_boot, seed=self.plan.seed,
                          clusters=self.data.patient_ids[rows])

    def counts(self) -> dict[str, int]:
        """Rows and patients per part and the training positives: what the server may know."""
        ids = self.data.patient_ids
        out = {f"n-{part}": int(len(getattr(self.rows, part))) for part in ("train", "val", "test")}
        out["patients"] = int(len(np.unique(ids[np.concatenate([self.rows.train, self.rows.val,
                                                                 self.rows.test])])))
        if self.task.target.value == "binary":
            out["positives-train"] = int(np.asarray(self.data.targets[self.rows.train]).sum())
        out["n-inputs"] = self.n_inputs
        out["n-outputs"] = self.width
        return out


def build_network(spec: ModelSpec, task: Task, n_inputs: int, width: int,
                  params: dict[str, Any], seed: int) -> nn.Module:
    """The run's network with its initial weights drawn from the run's seed (the same at the
    server and at every site)."""
    seed_everything(seed, True)
    head = head_for(task.target)
    return head.build(spec, n_inputs, width, params, head.wraps(spec))
