"""Federated training across sites, measured: centralised vs local-only vs FedAvg / FedProx /
FedAdam on the same test patients, client-level DP at several epsilons with the membership-
inference attack, and a deployment-engine run in which one SuperNode is killed mid-run.

    python benchmarks/federated.py --data-root ../shared/data [--rounds 20] [--skip-deployment]

Every federated run is `iatros federate TASK --sites COLUMN --model mlp --rounds R` (Flower's
simulation engine, one simulated SuperNode per site, seed 0, the task's patient-level split, so
the test patients are those of `iatros train TASK --model mlp`). Local-only: each site trains
the same network alone for R epochs and scores its own test patients; the pooled scores are
compared. Nothing here is chosen on test data: strategies run with their defaults, and the
per-round test curve (rounds to 95% of the centralised AUROC) is reported, not used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables

DATASETS = {  # name: (task, site column, note)
    "physionet2012": ("icu-mortality", "icu_type", "PhysioNet 2012 set A, the four ICU types as sites"),
    "eicu": ("eicu-mortality", "unit_type", "eICU demo, ICU unit types as sites (its 186 hospitals "
                                            "hold at most 21 stays each, too few to train)"),
}
TARGETS = ("Targets from the issue: FedAvg (or the best strategy) >= 98% of the centralised AUROC on "
           "PhysioNet 2012 by ICU type; DP at epsilon 8 costs at most 0.03 AUROC; membership-"
           "inference AUROC closer to 0.5 with DP than without.")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path(os.environ.get("IATROS_DATA", "../shared/data")))
    p.add_argument("--datasets", default="physionet2012,eicu")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--epsilons", default="8,3,1")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--skip-deployment", action="store_true")
    p.add_argument("--no-write", action="store_true")
    return p.parse_args(argv)


def _cell(entry: dict[str, Any]) -> str:
    lo, hi = entry["ci95"]
    return f"{entry['value']:.3f} ({lo:.3f}-{hi:.3f})"


def _rounds_to(record: dict[str, Any], target: float) -> str:
    for key in sorted(record.get("pooled_test_by_round") or {}, key=int):
        value = record["pooled_test_by_round"][key].get("pooled_test_auroc")
        if value is not None and value >= target:
            return key
    return f"not in {len(record['rounds'])}"


def _kept_validation(record: dict[str, Any]) -> str:
    """The kept round's validation AUROC averaged over the sites: what a user choosing among
    strategies without looking at test would compare."""
    kept = record.get("kept_round")
    for r in record["rounds"]:
        if r["round"] == kept and r.get("val_auroc") is not None:
            return f"{r['val_auroc']:.3f} (round {kept}, mean of sites)"
    return "-"


def local_only(task_name: str, sites: str, rounds: int, data_root: Path, n_boot: int) -> tuple[dict, float]:
    """Each site trains alone for `rounds` epochs and scores its own test patients."""
    from iatros.evaluate import metrics as M
    from iatros.federated.local import Plan, SiteModel, load_task, local_site
    from iatros.federated.sites import site_labels, site_problems, site_rows
    from iatros.pipeline.runs import run_split

    t0 = time.perf_counter()
    plan = Plan(task=task_name, model="mlp", sites=sites, local_epochs=rounds)
    task, data = load_task(plan, data_root)
    labels = site_labels(data, sites, 0)
    y, p, ids = [], [], []
    for rows in site_rows(labels, run_split(task, data, 0)):
        if site_problems(rows, data.targets, data.patient_ids, task.target):
            continue
        model = SiteModel(plan, task, data, local_site(plan, task, data, rows.label))
        model.prepare()
        model.train()
        y.append(data.targets[model.rows.test])
        p.append(model.scores("test"))
        ids.append(data.patient_ids[model.rows.test])
    result = M.evaluate(np.concatenate(y), np.concatenate(p), task.target, metrics=["auroc"],
                        n_boot=n_boot, clusters=np.concatenate(ids))
    return result["auroc"], time.perf_counter() - t0


def federated(api: Any, task: str, sites: str, rounds: int, data_root: Path, n_boot: int,
              out: Path, **kwargs: Any) -> tuple[dict, dict, dict, float]:
    t0 = time.perf_counter()
    run = api.federate(task, sites=sites, data_root=data_root, out=out, rounds=rounds,
                       eval_options=api.EvalOptions(n_boot=n_boot), register=False, **kwargs)
    seconds = time.perf_counter() - t0
    metrics = json.loads((run / "metrics.json").read_text())
    record = json.loads((run / "federation.json").read_text())
    return metrics["splits"]["test"]["auroc"], metrics, record, seconds


def strategies_table(api: Any, name: str, args: argparse.Namespace, tmp: Path) -> tuple[Table, Path]:
    task, sites, note = DATASETS[name]
    t0 = time.perf_counter()
    central_run = api.train(task, model="mlp", data_root=args.data_root, out=tmp / f"{name}-central",
                            eval_options=api.EvalOptions(n_boot=args.n_boot), register=False)
    central_seconds = time.perf_counter() - t0
    central = json.loads((central_run / "metrics.json").read_text())["splits"]["test"]["auroc"]
    central_val = json.loads((central_run / "metrics.json").read_text())["splits"]["val"]["auroc"]
    rows = [["centralised (records pooled)", _cell(central), "100%", "-", "-", "-",
             f"{central_val['value']:.3f} (pooled)", f"{central_seconds:.0f}",
             f"`iatros train {task} --model mlp`"]]
    print(" | ".join(rows[-1]), flush=True)
    local, seconds = local_only(task, sites, args.rounds, args.data_root, args.n_boot)
    rows.append([f"local only ({args.rounds} epochs at each site)", _cell(local),
                 f"{100 * local['value'] / central['value']:.1f}%", "-", "0", "-", "-",
                 f"{seconds:.0f}", "each site's own model on its own test patients"])
    print(" | ".join(rows[-1]), flush=True)
    fedavg_run = None
    for strategy in ("fedavg", "fedprox", "fedadam"):
        out = tmp / f"{name}-{strategy}"
        auroc, metrics, record, seconds = federated(api, task, sites, args.rounds, args.data_root,
                                                    args.n_boot, out, strategy=strategy)
        fedavg_run = fedavg_run or out
        traffic = np.mean([r["bytes_down"] + r["bytes_up"] for r in record["rounds"]]) / 1e6
        rows.append([f"{strategy} ({len(record['sites'])} sites"
                     + (f", {len(record['excluded'])} left out" if record["excluded"] else "") + ")",
                     _cell(auroc), f"{100 * auroc['value'] / central['value']:.1f}%",
                     _rounds_to(record, 0.95 * central["value"]), f"{traffic:.2f}",
                     f"{len(record['rounds'])}", _kept_validation(record), f"{seconds:.0f}",
                     f"`iatros federate {task} --sites {sites} --strategy {strategy} "
                     f"--rounds {args.rounds}`"])
        print(" | ".join(rows[-1]), flush=True)
    table = Table(["training", "test AUROC (95% CI)", "% of centralised", "rounds to 95% of centralised",
                   "MB per round", "rounds", "validation AUROC (kept round)", "s", "run"], rows,
                  command_line(),
                  [f"{note}; mlp, seed 0, the task's patient-level split (the same {central['n']} "
                   f"test patients in every row); 1 local epoch per round; the model kept is the "
                   f"round with the best validation AUROC averaged over the sites (as early "
                   f"stopping keeps the centralised run's best epoch); FedProx mu 0.01, FedAdam "
                   f"server learning rate 0.01 (defaults, not tuned). Test AUROC with a 95% "
                   f"patient-level bootstrap CI. Rounds to 95%: the first round whose global model "
                   f"reaches 95% of the centralised AUROC on the test patients (reported, never used "
                   f"to choose). MB per round: model weights sent to and returned by the sites.",
                   TARGETS, timing_note()])
    return table, fedavg_run


def privacy_table(api: Any, args: argparse.Namespace, tmp: Path, fedavg_run: Path) -> Table:
    task, sites, _ = DATASETS["physionet2012"]
    best = json.loads((fedavg_run / "metrics.json").read_text())["splits"]["test"]["auroc"]
    attack = api.membership_inference(fedavg_run, n_boot=args.n_boot)
    rows = [["no DP, best round", "-", "-", "-", _cell(best), "-", _cell(attack["auroc"]), "-"]]
    print(" | ".join(rows[-1]), flush=True)
    last_run = tmp / "no-dp-last"
    base, _, _, seconds = federated(api, task, sites, args.rounds, args.data_root, args.n_boot,
                                    last_run, keep="last")
    attack = api.membership_inference(last_run, n_boot=args.n_boot)
    rows.append(["no DP, last round", "-", "-", "-", _cell(base), "-", _cell(attack["auroc"]),
                 f"{seconds:.0f}"])
    print(" | ".join(rows[-1]), flush=True)
    for level in ("patient", "site"):
        for epsilon in [float(e) for e in args.epsilons.split(",")]:
            out = tmp / f"dp-{level}-{epsilon:g}"
            auroc, metrics, record, seconds = federated(api, task, sites, args.rounds,
                                                        args.data_root, args.n_boot, out,
                                                        dp_epsilon=epsilon, dp_level=level)
            attack = api.membership_inference(out, n_boot=args.n_boot)
            spent = metrics["privacy"]
            rows.append([level, f"{epsilon:g}", f"{spent['epsilon']:.2f}",
                         f"{spent['noise_multiplier']:.2f}", _cell(auroc),
                         f"{base['value'] - auroc['value']:+.3f}", _cell(attack["auroc"]),
                         f"{seconds:.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    return Table(["DP level (unit protected)", "target epsilon", "epsilon spent", "noise multiplier",
                  "test AUROC (95% CI)", "AUROC cost vs no DP (last round)",
                  "membership-inference AUROC (95% CI)",
                  "s"], rows, command_line(),
                 [f"`iatros federate {task} --sites {sites} --rounds {args.rounds} --dp-epsilon E "
                  f"--dp-level LEVEL`, FedAvg, the last round's model (choosing a round on "
                  f"validation would spend privacy). patient: DP-SGD (Opacus) in every site's local epochs, "
                  f"each example's gradient clipped to norm 1, the noise calibrated for all "
                  f"{args.rounds} rounds' epochs together, delta = 1 / (10 x the site's training "
                  f"rows), PRV accounting; the epsilon shown is the largest of the four sites'. "
                  f"site: client-level DP (Flower's DifferentialPrivacyClientSideFixedClipping: each "
                  f"site's update clipped to L2 norm 1, Gaussian noise added to the sum by the "
                  f"server), sites weighted equally, delta = 1 / (10 x sites), RDP accounting over "
                  f"the rounds without sampling amplification: it protects a whole site, of which "
                  f"there are four. Membership inference: the loss-threshold attack on equal numbers "
                  f"of training and test patients (`iatros audit RUN --membership`).",
                  TARGETS, timing_note()])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deployed_run(api: Any, args: argparse.Namespace, root: Path, secagg: bool) -> list[str]:
    """Three SuperNodes on 127.0.0.1 behind a TLS SuperLink with node authentication; the third
    is killed once it has received its second training message; the run must finish."""
    import threading

    from iatros.federated.deployment import start, superlink_command, supernode_command

    task, sites, _ = DATASETS["physionet2012"]
    certificates = api.make_certificates(root / "certs")
    port = _free_port()
    processes = [start(superlink_command(root, port=port, certificates=certificates,
                                         node_auth=True), root / "superlink.log")]
    connection = api.Connection(f"127.0.0.1:{port}", str(certificates / "ca.crt"))
    time.sleep(5)
    chosen = ["Medical ICU", "Surgical ICU", "Cardiac surgery recovery"]
    for k, site in enumerate(chosen):
        private, public = api.make_node_key(root / "keys", f"node{k}")
        api.register_node(public, connection, root / "flwr-home")
        processes.append(start(supernode_command(data_root=args.data_root, site=site,
                                                 superlink=f"127.0.0.1:{port}", port=_free_port(),
                                                 root_certificates=certificates / "ca.crt",
                                                 private_key=private),
                               root / f"supernode{k}.log"))
    killed: dict[str, float] = {}
    marker = "Receiving: train message"

    def kill_third() -> None:
        log = root / "supernode2.log"
        while "at" not in killed:
            text = log.read_text(errors="replace") if log.exists() else ""
            # SecAgg+ sends four train-type messages per round (setup, share keys, collect masked
            # vectors, unmask): the 7th is round 2's request for the masked update, so the node
            # dies after its keys were shared and before its masked vector is sent
            if text.count(marker) >= (7 if secagg else 2):
                os.killpg(processes[-1].pid, signal.SIGKILL)
                killed["at"] = time.perf_counter()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_third, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    try:
        run = api.federate(task, sites=sites, data_root=args.data_root,
                           out=root / "run", rounds=3, min_clients=2, secagg=secagg,
                           eval_options=api.EvalOptions(n_boot=args.n_boot), register=False,
                           timeout=180, connection=connection)
        seconds = time.perf_counter() - t0
    finally:
        killed.setdefault("at", float("nan"))
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    record = json.loads((run / "federation.json").read_text())
    auroc = json.loads((run / "metrics.json").read_text())["splits"]["test"]["auroc"]
    trained = ", ".join(f"round {r['round']}: {r['sites_trained']}" for r in record["rounds"])
    row = [f"{len(chosen)} SuperNodes, TLS + node authentication"
           + (", SecAgg+" if secagg else "") + "; one killed (SIGKILL) mid-run",
           trained, ", ".join(sorted(record["site_tests"])), _cell(auroc), f"{seconds:.0f}"]
    print(" | ".join(row), flush=True)
    return row


def deployment_table(api: Any, args: argparse.Namespace, tmp: Path) -> Table:
    task, sites, _ = DATASETS["physionet2012"]
    rows = [_deployed_run(api, args, tmp / f"deployment-{mode}", secagg=mode == "secagg")
            for mode in ("plain", "secagg")]
    return Table(["deployment run", "sites that returned an update", "sites scoring the final model",
                  "test AUROC (95% CI), all test patients", "s"], rows, command_line(),
                 [f"`flower-superlink` (TLS from `iatros federate-certificates`, "
                  f"--enable-supernode-auth with each node's key registered) and one "
                  f"`flower-supernode` per ICU type (Medical ICU, Surgical ICU, Cardiac surgery "
                  f"recovery), all on 127.0.0.1; `iatros federate {task} --sites {sites} "
                  f"--deployment --rounds 3 --min-clients 2 --timeout 180 [--secagg]`. The third "
                  f"SuperNode is killed once it has received its second training message "
                  f"(SecAgg+: its seventh, round 2's request for the masked update, after its "
                  f"key shares went out, so the server must remove its masks from the others' "
                  f"shares). Flower 1.42 starts a "
                  f"ClientApp process per message, which reloads the site's records: most of the "
                  f"time is that and the wait for the dead node.", timing_note()])


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-federated-"))
    from iatros import api

    def done(name: str, table: Table) -> None:
        """Print a table and, unless --no-write, store it at once (a later failure keeps it)."""
        print(table.markdown(), flush=True)
        if not args.no_write:
            print(write_tables("federated", {name: table}), flush=True)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fedavg_physionet = None
        for name in filter(None, args.datasets.split(",")):
            table, fedavg_run = strategies_table(api, name, args, tmp)
            done(name, table)
            if name == "physionet2012":
                fedavg_physionet = fedavg_run
        if fedavg_physionet is not None and args.epsilons:
            done("privacy", privacy_table(api, args, tmp, fedavg_physionet))
        if not args.skip_deployment:
            done("deployment", deployment_table(api, args, tmp))


if __name__ == "__main__":
    main()
