"""`iatros federate`: one task trained across hospitals with Flower, and the TLS certificates a
SuperLink needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True)

FEDERATE_HELP = (
    "Train TASK across sites with Flower: patients stay at their site, only model weights "
    "travel; the run folder holds the global model, per-round and per-site metrics with 95% CIs, "
    "and the report with a Sites section.\n\n"
    "Simulation (default): every site is simulated on this machine (Ray), e.g. "
    "`iatros federate icu-mortality --sites icu_type --rounds 20`.\n\n"
    "Deployment: start `flower-superlink` and one `flower-supernode` per hospital (README, "
    "\"Federated training across hospitals\"), then `iatros federate TASK --sites COLUMN "
    "--deployment --superlink HOST:PORT --root-certificates ca.crt`.")


def federate_cmd(
    task: Annotated[str, typer.Argument(help="Task name (see `iatros tasks`).")],
    sites: Annotated[str, typer.Option(
        "--sites", help="What makes a site: a column of the task's records naming the hospital "
                        "or unit (icu_type for PhysioNet 2012, site for eICU's hospitalid, a "
                        "csv:PATH column), or dirichlet:K[:ALPHA] (K sites, outcome-skewed, "
                        "seeded).")],
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Folder with input datasets (read-only). Default: $IATROS_DATA.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder to create.")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 20,
    local_epochs: Annotated[int, typer.Option(
        "--local-epochs", min=1, help="Epochs each site trains per round.")] = 1,
    strategy: Annotated[str, typer.Option(
        help="Flower strategy: fedavg, fedprox (--proximal-mu) or fedadam (--server-lr).")] = "fedavg",
    keep: Annotated[str | None, typer.Option(
        help="best: the global model of the round that scored best on the sites' validation "
             "patients (averaged over sites); last: the final round's (default: best, last under "
             "DP, where choosing on validation would spend privacy).")] = None,
    min_clients: Annotated[int, typer.Option(
        "--min-clients", min=1, help="Sites needed to start and to aggregate a round; a round "
                                     "goes on without a site that drops out while at least "
                                     "this many answer.")] = 2,
    model: Annotated[str, typer.Option(help="A torch model of the task (mlp, grud, ...).")] = "mlp",
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="NAME=VALUE: a model parameter or local training setting (lr, "
                        "batch_size, ...), repeatable.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, the initial weights, batches.")] = 0,
    proximal_mu: Annotated[float, typer.Option("--proximal-mu", min=0.0,
                                               help="FedProx's proximal weight.")] = 0.01,
    server_lr: Annotated[float, typer.Option("--server-lr", min=0.0,
                                             help="FedAdam's server learning rate.")] = 0.01,
    min_site_patients: Annotated[int, typer.Option(
        "--min-site-patients", min=1, help="A site with fewer training patients (or one outcome "
                                           "class) sits the run out, named in the report.")] = 20,
    dp_epsilon: Annotated[float | None, typer.Option(
        "--dp-epsilon", min=0.0, help="Differential privacy spending at most this epsilon over "
                                      "all rounds (see --dp-level).",
        rich_help_panel="Privacy")] = None,
    dp_level: Annotated[str, typer.Option(
        "--dp-level", help="site: client-level DP, Flower's client-side fixed clipping with noise "
                           "at the server (protects a whole site); patient: DP-SGD (Opacus) in "
                           "every site's local epochs (protects each patient record).",
        rich_help_panel="Privacy")] = "site",
    dp_delta: Annotated[float | None, typer.Option(
        "--dp-delta", help="DP delta (default 1 / (10 x sites) at site level, 1 / (10 x a site's "
                           "training rows) at patient level).", rich_help_panel="Privacy")] = None,
    clipping_norm: Annotated[float, typer.Option(
        "--clipping-norm", help="Client-level DP: each site's update is clipped to this L2 norm.",
        rich_help_panel="Privacy")] = 1.0,
    secagg: Annotated[bool, typer.Option(
        "--secagg", help="Secure aggregation (Flower's SecAgg+): each site masks its update, the "
                         "server learns only the sum; a site dropping out mid-round is tolerated "
                         "while more than half (and --min-clients) remain.",
        rich_help_panel="Privacy")] = False,
    deployment: Annotated[bool, typer.Option(
        "--deployment", help="Submit to a running SuperLink instead of simulating.",
        rich_help_panel="Deployment")] = False,
    superlink: Annotated[str, typer.Option(
        help="The SuperLink's address (Flower 1.42 serves its APIs on one HTTPS port).",
        rich_help_panel="Deployment")] = "127.0.0.1:9095",
    root_certificates: Annotated[Path | None, typer.Option(
        "--root-certificates", help="CA certificate of the SuperLink's TLS certificate.",
        rich_help_panel="Deployment")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Plain-text connection; refused unless the SuperLink is on this "
                           "machine.", rich_help_panel="Deployment")] = False,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the sites' replies in one round.",
        rich_help_panel="Deployment")] = 600.0,
    n_boot: Annotated[int, typer.Option("--n-boot", min=0,
                                        help="Bootstrap resamples for 95% CIs.")] = 1000,
    target: Annotated[str | None, typer.Option(
        help="csv:PATH tasks: the outcome column.", rich_help_panel="Your own table")] = None,
    patient_id: Annotated[str | None, typer.Option(
        help="csv:PATH tasks: patient id column.", rich_help_panel="Your own table")] = None,
    attr: Annotated[list[str] | None, typer.Option(
        help="csv:PATH tasks: a column to audit or to name sites by (repeatable).",
        rich_help_panel="Your own table")] = None,
) -> None:
    from iatros import api

    params, train_settings = api.split_trial(api.parse_params(param or []))
    options = {k: v for k, v in {"target": target, "patient_id": patient_id,
                                 "attributes": attr or None}.items() if v is not None}
    connection = (api.Connection(superlink, str(root_certificates) if root_certificates else None,
                                 insecure) if deployment else None)
    path = api.federate(task, sites=sites, data_root=data_root, out=out_dir, rounds=rounds,
                        local_epochs=local_epochs, strategy=strategy, min_clients=min_clients,
                        model=model, params=params or None, seed=seed,
                        train_overrides=train_settings or None, task_options=options or None,
                        proximal_mu=proximal_mu, server_lr=server_lr, dp_epsilon=dp_epsilon,
                        dp_delta=dp_delta, dp_level=dp_level, clipping_norm=clipping_norm,
                        min_site_patients=min_site_patients,
                        eval_options=api.EvalOptions(n_boot=n_boot, seed=seed),
                        connection=connection, timeout=timeout, secagg=secagg, keep=keep)
    err.print(api.summary_line(path), soft_wrap=True)
    print(path)


federate_cmd.__doc__ = FEDERATE_HELP


def certificates_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for ca.crt, server.pem, server.key.")],
    host: Annotated[list[str] | None, typer.Option(
        "--host", help="A name or IP address the SuperLink is reached at (repeatable; default "
                       "127.0.0.1 and localhost).")] = None,
    node: Annotated[list[str] | None, typer.Option(
        "--node", help="Also make a SuperNode key pair NAME / NAME.pub in OUT/nodes for node "
                       "authentication (repeatable, one per hospital).")] = None,
) -> None:
    """Make a private CA and the SuperLink's TLS certificate (ca.crt goes to every hospital as
    --root-certificates; the keys stay with the SuperLink, readable by its owner only), and
    SuperNode key pairs for node authentication."""
    from iatros import api

    folder = api.make_certificates(out, tuple(host or ("127.0.0.1", "localhost")))
    for name in node or []:
        private, public = api.make_node_key(folder / "nodes", name)
        err.print(f"SuperNode {name}: private key {private} (stays at the hospital), public key "
                  f"{public} (register it: iatros federate-register {public})")
    print(folder)


def register_cmd(
    public_key: Annotated[Path, typer.Argument(help="A SuperNode's NAME.pub.")],
    superlink: Annotated[str, typer.Option(help="The SuperLink's address.")] = "127.0.0.1:9095",
    root_certificates: Annotated[Path | None, typer.Option(
        "--root-certificates", help="CA certificate of the SuperLink's TLS certificate.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Plain text, 127.0.0.1 only.")] = False,
    home: Annotated[Path, typer.Option(
        "--flwr-home", help="Where the Flower CLI keeps its connection file.")] = Path(".flwr"),
) -> None:
    """Allow the SuperNode holding this key to join a SuperLink started with
    --enable-supernode-auth (`flwr supernode register`)."""
    from iatros import api

    connection = api.Connection(superlink, str(root_certificates) if root_certificates else None,
                                insecure)
    api.register_node(public_key, connection, home)
    err.print(f"registered {public_key} with {superlink}")
