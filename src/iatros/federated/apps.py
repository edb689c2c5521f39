"""The Flower apps of `iatros federate` (flwr Message API): a ClientApp that runs a site's
steps (`federated.local`) and a ServerApp that prepares the sites, runs Flower's strategy for
the rounds and scores the final model at every site.

Messages: `query` with stage `prepare` (each site fits the model's input preprocessing and
says whether it can take part), `fix` (the averaged preprocessing, kept in the node's state),
then Flower's `train` / `evaluate` rounds, and a last `query` with stage `test`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAdam,
    FedAvg,
    FedProx,
    Strategy,
)
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from iatros.errors import ConfigError, RunError
from iatros.federated.local import Plan, SiteModel, build_network, exchanged_keys, load_task, local_site
from iatros.federated.sites import too_few_sites
from iatros.pipeline.fit import check_model
from iatros.pipeline.runs import settings_for, task_for

log = logging.getLogger("iatros")

STRATEGIES = ("fedavg", "fedprox", "fedadam")
DP_LEVELS = ("site", "patient")
CONFIG = "config"  # Flower strategies' ConfigRecord key
SITE = "site"


# -- records -----------------------------------------------------------------------------------
def to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    record = ArrayRecord()
    for name, value in arrays.items():
        record[name] = Array.from_numpy_ndarray(np.ascontiguousarray(value))
    return record


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in record.items()}


def _site_record(model: SiteModel) -> ConfigRecord:
    return ConfigRecord({"label": model.rows.label})


# -- client ------------------------------------------------------------------------------------
SiteSource = Callable[[Context], tuple[str, str | None]]


def deployment_site(context: Context) -> tuple[str, str | None]:
    """A hospital's SuperNode names its own data: `--node-config "data-root='/data' site='2'"`
    (site: its label under the run's --sites column; left out, every record there is its own)."""
    config = context.node_config
    if "data-root" not in config:
        raise ConfigError("this SuperNode has no data root: start it with "
                          "--node-config \"data-root='/path/to/data'\"")
    if not Path(str(config["data-root"])).is_dir():
        raise ConfigError(f"this SuperNode's data root {config['data-root']} is not a folder")
    site = config.get("site")
    return str(config["data-root"]), (str(site) if site not in (None, "") else None)


def simulation_sites(data_root: str, labels: list[str]) -> SiteSource:
    """Simulated SuperNode k holds the rows of the k-th site label."""
    def source(context: Context) -> tuple[str, str | None]:
        return data_root, labels[int(context.node_config["partition-id"])]
    return source


def _plan(msg: Message) -> Plan:
    config = msg.content.config_records.get(CONFIG)
    if config is None or "plan" not in config:
        raise ConfigError("message carries no iatros plan: is the ServerApp iatros's?")
    return Plan.from_json(str(config["plan"]))


def _site_model(msg: Message, context: Context, source: SiteSource,
                plan: Plan | None = None) -> SiteModel:
    plan = plan or _plan(msg)
    data_root, site = source(context)
    task, data = load_task(plan, data_root)
    model = SiteModel(plan, task, data, local_site(plan, task, data, site))
    if "fixed" in context.state.array_records:
        model.load(from_record(context.state.array_records["fixed"]))
    return model


def _query(msg: Message, context: Context, source: SiteSource) -> Message:
    stage = str(msg.content.config_records[CONFIG]["stage"])
    model = _site_model(msg, context, source)
    content = RecordDict({SITE: _site_record(model)})
    if stage == "prepare":
        content["arrays"] = to_record(model.prepare())
        content["metrics"] = MetricRecord(model.counts())
        content[SITE]["problems"] = json.dumps(model.problems())
    elif stage == "fix":
        context.state.array_records["fixed"] = msg.content.array_records["arrays"]
        content["metrics"] = MetricRecord({"ok": 1})
    elif stage == "test":
        model.load(from_record(msg.content.array_records["arrays"]))
        content[SITE]["test"] = json.dumps(model.evaluate("test", intervals=True))
        content[SITE]["privacy"] = json.dumps(model.privacy_spent())
    else:
        raise ConfigError(f"unknown query stage {stage!r}")
    return Message(content, reply_to=msg)


def _ready(model: SiteModel, context: Context) -> SiteModel:
    problems = model.problems()
    if problems:
        raise ConfigError(f"site {model.rows.label} cannot train: {'; '.join(problems)}")
    if "fixed" not in context.state.array_records:
        raise RunError(f"site {model.rows.label} has no preprocessing from this run (it joined "
                       f"after the preparation); it sits this run out")
    return model


def _train(msg: Message, context: Context, source: SiteSource) -> Message:
    if LEGACY_FIT in msg.content.array_records:
        return _train_secure(msg, context, source)
    model = _ready(_site_model(msg, context, source), context)
    config = msg.content.config_records[CONFIG]
    model.load(from_record(msg.content.array_records["arrays"]))
    number = int(config.get(ROUND, 1))
    losses = model.train(float(config.get("proximal-mu", 0.0)), number)
    metrics = MetricRecord({"num-examples": len(model.rows.train), "uniform": 1, ROUND: number,
                            **losses})
    return Message(RecordDict({"arrays": to_record(model.trainable()), "metrics": metrics,
                               SITE: _site_record(model)}), reply_to=msg)


def _val_test(model: SiteModel) -> dict[str, float]:
    metric = model.task.primary_metric
    return {f"val_{metric}": float(model.evaluate("val")[metric]),
            f"test_{metric}": float(model.evaluate("test")[metric])}


def _evaluate(msg: Message, context: Context, source: SiteSource) -> Message:
    if LEGACY_EVALUATE in msg.content.array_records:
        return _evaluate_secure(msg, context, source)
    model = _site_model(msg, context, source)
    model.load(from_record(msg.content.array_records["arrays"]))
    number = int(msg.content.config_records[CONFIG].get(ROUND, 0))
    metrics = MetricRecord({"num-examples": len(model.rows.val), "uniform": 1, ROUND: number,
                            **_val_test(model)})
    return Message(RecordDict({"metrics": metrics, SITE: _site_record(model)}), reply_to=msg)


# Flower 1.42's SecAgg+ runs only in its DefaultWorkflow, whose messages carry the older
# FitIns / EvaluateIns records; the same site steps answer them.
LEGACY_FIT = "fitins.parameters"
LEGACY_EVALUATE = "evaluateins.parameters"


def _train_secure(msg: Message, context: Context, source: SiteSource) -> Message:
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    model = _ready(_site_model(msg, context, source, Plan.from_json(str(ins.config["plan"]))),
                   context)
    model.load(dict(zip(model.keys, parameters_to_ndarrays(ins.parameters), strict=True)))
    number = int(ins.config.get(ROUND, 1))
    losses = model.train(float(ins.config.get("proximal_mu", 0.0)), number)
    trained = model.trainable()
    res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([trained[k] for k in model.keys]),
                 len(model.rows.train), {**losses, "site": model.rows.label, ROUND: number})
    return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)


def _evaluate_secure(msg: Message, context: Context, source: SiteSource) -> Message:
    from flwr.common import Code, EvaluateRes, Status, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    ins = compat.recorddict_to_evaluateins(msg.content, keep_input=True)
    model = _site_model(msg, context, source, Plan.from_json(str(ins.config["plan"])))
    model.load(dict(zip(model.keys, parameters_to_ndarrays(ins.parameters), strict=True)))
    res = EvaluateRes(Status(Code.OK, ""), float("nan"), len(model.rows.val),
                      {**_val_test(model), "site": model.rows.label,
                       ROUND: int(ins.config.get(ROUND, 0))})
    return Message(compat.evaluateres_to_recorddict(res), reply_to=msg)


def _number(value: Any) -> float | None:
    """A metric for the JSON record: NaN (undefined, e.g. AUROC on one class) becomes None."""
    value = float(value)
    return value if np.isfinite(value) else None


def _secure_aggregation(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's SecAgg+ client steps (masking the update, sharing keys), on training messages."""
    from flwr.client.mod import secaggplus_mod

    return secaggplus_mod(msg, context, call_next)


def _clip_train_only(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's client-side clipping for client-level DP, on training messages only."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    return fixedclipping_mod(msg, context, call_next)


def make_client_app(source: SiteSource, private: bool = False, secure: bool = False) -> ClientApp:
    """A ClientApp answering iatros's messages with this source of site data (with Flower's
    client-side clipping for client-level DP, or its SecAgg+ steps)."""
    app = ClientApp(mods=[_clip_train_only] if private else [_secure_aggregation] if secure else [])

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return _query(msg, context, source)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return _train(msg, context, source)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return _evaluate(msg, context, source)

    return app


# -- server ------------------------------------------------------------------------------------
@dataclass
class Federation:
    """The server's settings of a federated run."""

    rounds: int = 20
    strategy: str = "fedavg"
    min_clients: int = 2
    proximal_mu: float = 0.01
    server_lr: float = 0.01
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    dp_level: str = "site"  # site: Flower's client-level DP; patient: DP-SGD at each site
    clipping_norm: float = 1.0
    timeout: float = 600.0
    secagg: bool = False  # Flower's SecAgg+: the server sees only the sum of the sites' updates
    keep: str = "best"  # best: the round whose global model scored best on the sites' validation

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, "
                              f"not {self.strategy!r}")
        if self.rounds < 1 or self.min_clients < 1:
            raise ConfigError("--rounds and --min-clients must be at least 1")
        if self.dp_epsilon is not None and self.dp_epsilon <= 0:
            raise ConfigError(f"--dp-epsilon must be positive, not {self.dp_epsilon}")
        if self.secagg and self.site_dp:
            raise ConfigError("--secagg runs Flower's SecAgg+ workflow, which Flower 1.42 does not "
                              "combine with its client-level DP wrapper; use --dp-level patient "
                              "with --secagg")
        if self.keep not in ("best", "last"):
            raise ConfigError(f"--keep must be best or last, not {self.keep!r}")
        if self.dp_level not in DP_LEVELS:
            raise ConfigError(f"--dp-level must be one of {', '.join(DP_LEVELS)}, "
                              f"not {self.dp_level!r}")

    @property
    def site_dp(self) -> bool:
        return self.dp_epsilon is not None and self.dp_level == "site"


@dataclass
class Recorder:
    """Per-round and per-site numbers as the strategy aggregates them, keyed by the round the
    sites echo back (a round in which no site answered has no entry)."""

    model_bytes: int = 0
    by_round: dict[int, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return [self.by_round[k] for k in sorted(self.by_round)]

    def _round(self, number: int) -> dict[str, Any]:
        return self.by_round.setdefault(number, {"round": number, "sites_trained": 0,
                                                 "bytes_down": 0, "bytes_up": 0, "sites": {}})

    def _trained(self, number: int, sites: dict[str, dict[str, Any]], up: int | None) -> None:
        entry = self._round(number)
        entry.update(sites_trained=len(sites), bytes_down=self.model_bytes * len(sites),
                     bytes_up=up)
        for label, metrics in sites.items():
            entry["sites"].setdefault(label, {}).update(metrics)

    def _evaluated(self, number: int, sites: dict[str, dict[str, Any]],
                   aggregated: dict[str, Any]) -> None:
        entry = self._round(number)
        for label, metrics in sites.items():
            entry["sites"].setdefault(label, {}).update(metrics)
        entry["seconds"] = round(time.perf_counter() - self.started, 2)
        entry.update({k: _number(v) for k, v in aggregated.items()
                      if k not in ("uniform", "num-examples", ROUND)})

    @staticmethod
    def _sites(records: list[RecordDict], drop: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        return {str(r.config_records[SITE]["label"]):
                {k: _number(v) for k, v in r["metrics"].items() if k not in drop}
                for r in records}

    def train(self, records: list[RecordDict], key: str) -> MetricRecord:
        up = sum(r.array_records["arrays"].count_bytes() for r in records if "arrays" in r)
        self._trained(_round_of(records), self._sites(records, ("uniform", ROUND)), int(up))
        return aggregate_metricrecords(records, key)

    def evaluate(self, records: list[RecordDict], key: str) -> MetricRecord:
        aggregated = aggregate_metricrecords(records, key)
        sites = [(float(r["metrics"]["num-examples"]), dict(r["metrics"])) for r in records]
        aggregated.update(_mean_metrics(sites))  # a site whose metric is undefined is skipped
        self._evaluated(_round_of(records),
                        self._sites(records, ("uniform", "num-examples", ROUND)), aggregated)
        return aggregated

    def legacy_train(self, results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """The same record from SecAgg+ rounds (FitRes metrics; what travels is masked, so
        traffic is not counted)."""
        sites = {str(m["site"]): {"num-examples": float(n),
                                  **{k: _number(v) for k, v in m.items() if k not in ("site", ROUND)}}
                 for n, m in results}
        self._trained(int(results[0][1][ROUND]), sites, None)
        return _mean_metrics(results)

    def legacy_evaluate(self, results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        sites = {str(m["site"]): {k: _number(v) for k, v in m.items() if k not in ("site", ROUND)}
                 for _, m in results}
        aggregated = _mean_metrics(results)
        self._evaluated(int(results[0][1][ROUND]), sites, aggregated)
        return aggregated


ROUND = "server-round"


def _round_of(records: list[RecordDict]) -> int:
    return int(records[0]["metrics"][ROUND])


def _mean_metrics(results: list[tuple[float, dict[str, Any]]]) -> dict[str, float]:
    """Example-weighted means of the numeric metrics over the sites where each is defined
    (an AUROC is undefined at a site whose validation patients have one outcome)."""
    keys = {k for _, m in results for k, v in m.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {}
    for k in keys:
        pairs = [(n, float(m[k])) for n, m in results
                 if isinstance(m.get(k), (int, float)) and np.isfinite(float(m[k]))]
        total = sum(n for n, _ in pairs)
        out[k] = float(sum(n * v for n, v in pairs) / total) if total else float("nan")
    return out


class SiteGrid:
    """The grid seen by the strategy: only the nodes whose sites can take part."""

    def __init__(self, grid: Grid, nodes: list[int]) -> None:
        self._grid, self._nodes = grid, nodes

    def get_node_ids(self) -> list[int]:
        alive = set(self._grid.get_node_ids())
        return [n for n in self._nodes if n in alive]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


def _wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n:
            return nodes
        if time.monotonic() > deadline:
            raise RunError(f"only {len(nodes)} of the {n} sites needed (--min-clients) connected "
                           f"within {timeout:.0f} s")
        time.sleep(1.0)


def _ask(grid: Grid, nodes: list[int], stage: str, plan: Plan, timeout: float,
         arrays: ArrayRecord | None = None) -> dict[int, Message]:
    """Send a query stage to the nodes; their replies by node (errors logged and left out)."""
    messages = []
    for node in nodes:
        content = RecordDict({CONFIG: ConfigRecord({"stage": stage, "plan": plan.to_json()})})
        if arrays is not None:
            content["arrays"] = arrays
        messages.append(Message(content, node, MessageType.QUERY))
    replies = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = reply.metadata.src_node_id
        if reply.has_error():
            log.warning("site on node %s failed at %s: %s", node, stage, reply.error.reason[:300])
        else:
            replies[node] = reply
    return replies


def noise_for(epsilon: float, delta: float, rounds: int) -> float:
    """The Gaussian noise multiplier that spends `epsilon` over `rounds` releases of the sum of
    clipped site updates (every site in every round: no sampling amplification)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=1.0,
                                      steps=rounds, accountant="rdp"))


def spent(noise: float, delta: float, rounds: int) -> float:
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise, 1.0, rounds)]
    return float(accountant.get_epsilon(delta))


def make_strategy(fed: Federation, recorder: Recorder, n_sites: int) -> tuple[Strategy, dict]:
    weight = "uniform" if fed.site_dp else "num-examples"
    common = dict(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=fed.min_clients,
                  min_evaluate_nodes=fed.min_clients, min_available_nodes=fed.min_clients,
                  weighted_by_key=weight, train_metrics_aggr_fn=recorder.train,
                  evaluate_metrics_aggr_fn=recorder.evaluate)
    if fed.strategy == "fedprox":
        strategy: Strategy = FedProx(**common, proximal_mu=fed.proximal_mu)
    elif fed.strategy == "fedadam":
        strategy = FedAdam(**common, eta=fed.server_lr, eta_l=fed.server_lr)
    else:
        strategy = FedAvg(**common)
    if not fed.site_dp:
        return strategy, {}
    delta = fed.dp_delta or 1.0 / (10 * n_sites)
    noise = noise_for(fed.dp_epsilon, delta, fed.rounds)
    private = DifferentialPrivacyClientSideFixedClipping(
        strategy, noise_multiplier=noise, clipping_norm=fed.clipping_norm,
        num_sampled_clients=n_sites)
    privacy = {"mechanism": "client-level DP (Flower DifferentialPrivacyClientSideFixedClipping: "
                            "updates clipped at each site, Gaussian noise added by the server)",
               "accountant": "rdp (Opacus)", "target_epsilon": fed.dp_epsilon,
               "epsilon": round(spent(noise, delta, fed.rounds), 4), "delta": delta,
               "noise_multiplier": round(noise, 6), "clipping_norm": fed.clipping_norm,
               "sites": n_sites, "rounds": fed.rounds, "unit": "a site (hospital)"}
    return private, privacy


PooledEvaluation = Callable[[dict[str, np.ndarray]], dict[str, float]]


def run_federation(grid: Grid, context: Context, plan: Plan, fed: Federation,
                   pooled: PooledEvaluation | None = None) -> dict[str, Any]:
    """The server's side of a run: prepare the sites, run the strategy, test at every site.
    Returns the final state dict (as arrays) and the federation record for the run folder."""
    started = time.perf_counter()
    nodes = _wait_for_nodes(grid, fed.min_clients, fed.timeout)
    prepared = _ask(grid, nodes, "prepare", plan, fed.timeout)
    sites, excluded = {}, []
    for node, reply in sorted(prepared.items()):
        label = str(reply.content.config_records[SITE]["label"])
        problems = json.loads(str(reply.content.config_records[SITE]["problems"]))
        counts = {k: int(v) for k, v in reply.content.metric_records["metrics"].items()}
        if problems:
            excluded.append({"site": label, "reasons": problems, **counts})
            log.warning("site %s sits this run out: %s", label, "; ".join(problems))
        else:
            sites[node] = (label, counts, from_record(reply.content.array_records["arrays"]))
    if len(sites) < fed.min_clients:
        raise ConfigError(too_few_sites(len(sites), fed.min_clients,
                                        [(e["site"], e["reasons"]) for e in excluded]))
    widths = {(c["n-inputs"], c["n-outputs"]) for _, c, _ in sites.values()}
    if len(widths) != 1:
        raise ConfigError(f"sites disagree on the model's inputs and outputs {sorted(widths)}: "
                          f"their records have different features")
    (n_inputs, n_outputs), = widths
    fixed = _weighted_mean([(c["n-train"], a) for _, c, a in sites.values()])
    settings = settings_for(None)
    task = task_for(plan.task, plan.task_options, settings)
    spec = check_model(task, plan.model)
    params = {**spec.params, **task.model_params, **plan.params}
    network = build_network(spec, task, n_inputs, n_outputs, params, plan.seed)
    keys = exchanged_keys(network)
    state = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
    state.update(fixed)
    participants = sorted(sites)
    _ask(grid, participants, "fix", plan, fed.timeout, to_record(fixed))
    recorder = Recorder()
    server_eval: dict[int, dict[str, float | None]] = {}
    by_round: dict[int, dict[str, np.ndarray]] = {}

    def pooled_at(round_number: int, weights: dict[str, np.ndarray]) -> dict[str, float] | None:
        if round_number > 0 and fed.keep == "best":
            by_round[round_number] = {k: np.array(v, copy=True) for k, v in weights.items()}
        if pooled is None or round_number == 0:
            return None
        result = pooled({**state, **weights})
        server_eval[round_number] = {k: _number(v) for k, v in result.items()}
        return result

    if fed.secagg:
        final, privacy = _secure_rounds(grid, context, plan, fed, recorder, keys, state,
                                        participants, sum(c["n-train"] for _, c, _ in sites.values()),
                                        pooled_at), {}
    else:
        final, privacy = _strategy_rounds(grid, plan, fed, recorder, keys, state, participants,
                                          pooled_at)
    kept = _best_round(recorder.rounds, task) if fed.keep == "best" else None
    state.update(by_round.get(kept, final))
    tested = _ask(grid, participants, "test", plan, fed.timeout, to_record(state))
    site_tests = {str(r.content.config_records[SITE]["label"]):
                  json.loads(str(r.content.config_records[SITE]["test"])) for r in tested.values()}
    if fed.dp_epsilon is not None and fed.dp_level == "patient":
        privacy = _patient_privacy({str(r.content.config_records[SITE]["label"]):
                                    json.loads(str(r.content.config_records[SITE]["privacy"]))
                                    for r in tested.values()}, fed)
    record = {"federation": asdict(fed), "plan": json.loads(plan.to_json()),
              "sites": [{"site": label, **counts} for label, counts, _ in sites.values()],
              "excluded": excluded, "rounds": recorder.rounds, "site_tests": site_tests,
              "pooled_test_by_round": server_eval, "privacy": privacy or None,
              "model_bytes": recorder.model_bytes,
              "kept_round": kept or len(recorder.rounds),
              "seconds": round(time.perf_counter() - started, 2)}
    return {"state": state, "record": record}


PooledAt = Callable[[int, dict[str, np.ndarray]], dict[str, float] | None]


def _strategy_rounds(grid: Grid, plan: Plan, fed: Federation, recorder: Recorder, keys: list[str],
                     state: dict[str, np.ndarray], participants: list[int],
                     pooled_at: PooledAt) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The rounds with a Flower Message API strategy (optionally wrapped for client-level DP)."""
    initial = to_record({k: state[k] for k in keys})
    recorder.model_bytes = initial.count_bytes()
    strategy, privacy = make_strategy(fed, recorder, len(participants))
    config = ConfigRecord({"plan": plan.to_json()})

    def evaluate_fn(round_number: int, arrays: ArrayRecord) -> MetricRecord | None:
        result = pooled_at(round_number, from_record(arrays))
        return MetricRecord(result) if result is not None else None

    # the strategy calls evaluate_fn after the round's site evaluation, with the round's weights
    result = strategy.start(grid=SiteGrid(grid, participants), initial_arrays=initial,
                            num_rounds=fed.rounds, timeout=fed.timeout, train_config=config,
                            evaluate_config=ConfigRecord({"plan": plan.to_json()}),
                            evaluate_fn=evaluate_fn)
    if len(result.arrays) == 0:
        raise RunError("no round could aggregate the sites' updates (every site failed); see "
                       "the log above")
    return from_record(result.arrays), privacy


def _secure_rounds(grid: Grid, context: Context, plan: Plan, fed: Federation, recorder: Recorder,
                   keys: list[str], state: dict[str, np.ndarray], participants: list[int],
                   total_rows: int, pooled_at: PooledAt) -> dict[str, np.ndarray]:
    """The rounds under Flower's SecAgg+ (`SecAggPlusWorkflow` in its `DefaultWorkflow`): each
    site masks its weighted update with pairwise and private masks whose keys are secret-shared,
    so the server learns only the sum; a site that drops out is unmasked from the others' shares
    while at least the reconstruction threshold remain."""
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server import strategy as legacy
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    initial = [state[k] for k in keys]
    recorder.model_bytes = int(sum(a.nbytes for a in initial))
    plan_json = plan.to_json()

    def evaluate_fn(round_number: int, weights: list[np.ndarray], config: dict) -> Any:
        result = pooled_at(round_number, dict(zip(keys, weights, strict=True)))
        return None if result is None else (float("nan"), result)

    common = dict(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=fed.min_clients,
                  min_evaluate_clients=fed.min_clients, min_available_clients=fed.min_clients,
                  initial_parameters=ndarrays_to_parameters(initial),
                  on_fit_config_fn=lambda r: {"plan": plan_json, ROUND: r},
                  on_evaluate_config_fn=lambda r: {"plan": plan_json, ROUND: r},
                  fit_metrics_aggregation_fn=recorder.legacy_train,
                  evaluate_metrics_aggregation_fn=recorder.legacy_evaluate,
                  evaluate_fn=evaluate_fn)
    if fed.strategy == "fedprox":
        strategy: Any = legacy.FedProx(**common, proximal_mu=fed.proximal_mu)
    elif fed.strategy == "fedadam":
        strategy = legacy.FedAdam(**common, eta=fed.server_lr, eta_l=fed.server_lr)
    else:
        strategy = legacy.FedAvg(**common)
    n = len(participants)
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=n, reconstruction_threshold=max(2, fed.min_clients, n // 2 + 1),
        max_weight=float(total_rows + 1), timeout=fed.timeout))
    legacy_context = LegacyContext(context, config=ServerConfig(num_rounds=fed.rounds,
                                                                round_timeout=fed.timeout),
                                   strategy=strategy)
    workflow(SiteGrid(grid, participants), legacy_context)
    final = compat.arrayrecord_to_parameters(legacy_context.state.array_records[MAIN_PARAMS_RECORD],
                                             keep_input=True)
    return dict(zip(keys, parameters_to_ndarrays(final), strict=True))


def _best_round(rounds: list[dict[str, Any]], task: Any) -> int | None:
    """The round whose global model had the best validation metric, averaged over the sites
    (weighted by their validation rows): the federated counterpart of early stopping."""
    from iatros.evaluate.metrics import METRICS

    key = f"val_{task.primary_metric}"
    scored = [(r[key], r["round"]) for r in rounds if r.get(key) is not None]
    if not scored:
        return None
    higher = METRICS[task.primary_metric].higher_is_better
    return (max(scored) if higher else min(scored))[1]


def _patient_privacy(sites: dict[str, dict[str, Any]], fed: Federation) -> dict[str, Any]:
    """Patient-level DP over the sites: the largest epsilon any site's patients spent."""
    worst = max(sites.values(), key=lambda p: p["epsilon"])
    return {"mechanism": "DP-SGD (Opacus) at each site, sample-level, over every round's local "
                         "epochs", "accountant": "prv", "unit": "example",
            "epsilon": round(worst["epsilon"], 4), "delta": worst["delta"],
            "target_epsilon": fed.dp_epsilon, "noise_multiplier": round(worst["noise_multiplier"], 6),
            "max_grad_norm": worst["max_grad_norm"], "steps": worst["steps"],
            "sites": {label: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in p.items()}
                      for label, p in sites.items()}}


def _weighted_mean(parts: list[tuple[int, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    total = sum(n for n, _ in parts)
    keys = parts[0][1].keys()
    return {k: (sum(n * np.asarray(a[k], dtype=np.float64) for n, a in parts) / total)
            .astype(parts[0][1][k].dtype) for k in keys}


def make_server_app(plan: Plan, fed: Federation, finish: Callable[[dict[str, Any]], None],
                    pooled: PooledEvaluation | None = None) -> ServerApp:
    """A ServerApp running this plan and handing the outcome to `finish` (in the same process:
    the simulation engine)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        finish(run_federation(grid, context, plan, fed, pooled))

    return app


# -- the deployment engine's apps, loaded by flower-superlink / flower-supernode ----------------
server_app = ServerApp()


@server_app.main()
def _deployment_main(grid: Grid, context: Context) -> None:
    """Reads the run's plan file (written by `iatros federate --deployment`) and writes the
    outcome beside it, for the waiting `iatros federate` to finish the run."""
    from iatros.federated.outcome import write_failure, write_outcome

    plan_file = Path(str(context.run_config["plan-file"]))
    saved = json.loads(plan_file.read_text())
    try:
        outcome = run_federation(grid, context, Plan(**saved["plan"]),
                                 Federation(**saved["federation"]))
    except Exception as e:  # the waiting `iatros federate` reports it instead of timing out
        write_failure(plan_file.parent, e)
        raise
    write_outcome(plan_file.parent, outcome)


client_app = make_client_app(deployment_site)
private_client_app = make_client_app(deployment_site, private=True)
secure_client_app = make_client_app(deployment_site, secure=True)
