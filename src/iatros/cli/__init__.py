"""The `iatros` command line: a thin Typer layer over iatros.api."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from iatros.cli.deid import deid_app
from iatros.cli.federate import certificates_cmd, federate_cmd, register_cmd
from iatros.cli.monitor import monitor_app
from iatros.cli.nlp import nlp_app
from iatros.cli.output import progress_flag as _progress
from iatros.cli.output import report_failures
from iatros.cli.pgx import pgx_app
from iatros.cli.service import audit_app, keys_app, serve_cmd, teams_app, users_app
from iatros.errors import IatrosError

app = typer.Typer(
    name="iatros",
    help="Deep learning in medicine: train, evaluate, audit and document clinical models.\n\n"
         "A TASK says what to predict from which data; `iatros train TASK` writes a RUN folder "
         "(checkpoint, predictions, metrics with 95% CIs, subgroup audit, report.html) and "
         "registers it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DataRoot = Annotated[Path | None, typer.Option(
    "--data-root", help="Folder with input datasets (read-only). Default: $IATROS_DATA, "
                        "else ~/.cache/iatros/data.")]
Boot = Annotated[int, typer.Option("--n-boot", min=0,
                                   help="Bootstrap resamples for 95% confidence intervals.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Trust = Annotated[bool, typer.Option(
    "--trust", help="Use the run folder even if its files differ from its manifest (or it has "
                    "none), and load a pickled model from an older iatros: only for folders you "
                    "made or checked yourself, since a crafted file can run code.")]


def _fmt(entry: dict[str, Any] | None) -> str:
    from iatros import api

    return api.fmt_entry(entry)


def _threshold(value: str) -> str | float:
    try:
        return float(value)
    except ValueError:
        return value


@app.command("tasks")
def tasks_cmd(as_json: Json = False) -> None:
    """List the registered tasks."""
    from iatros import api

    rows = api.tasks()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="iatros tasks")
    for col in ("task", "modality", "target", "models", "audit by", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["modality"], r["target"], _models_cell(r),
                      ", ".join(r["sensitive_attributes"]) or "-", r["description"])
    out.print(table)
    families = api.families()
    if families:
        out.print("Task families: " + ", ".join(f"{f}:ARG" for f in families))


def _models_cell(row: dict) -> str:
    """The task's models with its default marked; `auto` names what it cross-validates."""
    if row.get("selection"):
        head = f"auto (default: CV over {', '.join(row['selection'])})"
        return ", ".join([head, *row["models"]])
    return ", ".join(f"{m} (default)" if m == row.get("default_model") else m for m in row["models"])


@app.command("train")
def train_cmd(
    task: Annotated[str, typer.Argument(help="Task name (see `iatros tasks`).")],
    data_root: DataRoot = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Run folder to create (default: $IATROS_HOME/runs/TASK-MODEL-TIME).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum epochs (torch models).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation and batches.")] = 0,
    model: Annotated[str | None, typer.Option(
        help="Model name, or auto: the model the task's cross-validation prefers (default: the "
             "task's; auto for health-record tasks, see `iatros tasks`).")] = None,
    select_folds: Annotated[int | None, typer.Option(
        "--select-folds", min=2, help="--model auto: folds of train + val each candidate is "
                                     "cross-validated on (default 5).")] = None,
    cv: Annotated[int | None, typer.Option(
        "--cv", min=2, help="After training, cross-validate the model over K patient-level folds "
                            "of train + val (K more trainings; test untouched) and add the "
                            "pooled out-of-fold metrics with 95% CIs to the run and report.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run (--out, or the task's newest unfinished "
                         "run) from its last checkpoint.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, or auto.")] = None,
    ensemble: Annotated[int | None, typer.Option(
        min=1, help="Train N networks with seeds S..S+N-1 and average their probabilities (or "
                    "survival curves); taggers keep the entities most members predict. Default: "
                    "the model's (deepsurv 5, cross-fit; others 1).")] = None,
    cross_fit: Annotated[bool | None, typer.Option(
        "--cross-fit/--no-cross-fit", help="With --ensemble N: member k stops early on fold k of "
                            "N of the training rows, so every row fits N-1 members (otherwise the "
                            "validation part fits none); validation metrics and calibration use "
                            "each row's held-out member.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="NAME=VALUE: a model parameter or training setting (repeatable), e.g. "
                        "--param widen_factor=0.5 --param hidden=64x64 --param lr=3e-3 "
                        "--param keep=last; `iatros tune --space` takes the same names.")] = None,
    n_boot: Boot = 1000,
    threshold: Annotated[str, typer.Option(
        help="Decision threshold on the calibrated probability (binary tasks): a number in "
             "[0, 1], or a rule applied to the validation set: youden (max sensitivity + "
             "specificity), sens90 (90% sensitivity).")] = "youden",
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bars (default: when stderr is a terminal).")
    ] = None,
    target: Annotated[list[str] | None, typer.Option(
        help="csv:PATH tasks: the outcome column; molecules:PATH: a measured column (repeat it "
             "for several 0/1 assays: one multilabel task).",
        rich_help_panel="Your own table")] = None,
    time_col: Annotated[str | None, typer.Option(
        "--time", help="csv:PATH survival tasks: follow-up time column.",
        rich_help_panel="Your own table")] = None,
    event_col: Annotated[str | None, typer.Option(
        "--event", help="csv:PATH survival tasks: event column (1 = event, 0 = censored).",
        rich_help_panel="Your own table")] = None,
    kind: Annotated[str | None, typer.Option(
        help="csv:PATH tasks: binary, multiclass, ordinal or regression (default: inferred).",
        rich_help_panel="Your own table")] = None,
    positive: Annotated[str | None, typer.Option(
        help="csv:PATH tasks: the positive value of a binary outcome.",
        rich_help_panel="Your own table")] = None,
    patient_id: Annotated[str | None, typer.Option(
        help="csv:PATH tasks: patient id column (splits keep a patient's rows together).",
        rich_help_panel="Your own table")] = None,
    attr: Annotated[list[str] | None, typer.Option(
        help="csv:PATH tasks: a sensitive attribute column to audit (repeatable).",
        rich_help_panel="Your own table")] = None,
    allow_text_feature: Annotated[bool, typer.Option(
        "--allow-text-feature", help="csv:PATH tasks: one-hot encode columns that look like free "
                                     "text or identifiers instead of refusing them; their values "
                                     "stay out of config.json, the report and the registry.",
        rich_help_panel="Your own table")] = False,
    keep_text: Annotated[bool, typer.Option(
        "--keep-text", help="Token tagging: keep each sentence's words in predictions.csv "
                            "(default: token counts and tags only).")] = False,
    drop: Annotated[list[str] | None, typer.Option(
        help="csv:PATH tasks: a column to leave out of the features (repeatable).",
        rich_help_panel="Your own table")] = None,
    labels: Annotated[Path | None, typer.Option(
        help="images:FOLDER tasks: CSV with image, label and patient_id columns "
             "(default FOLDER/labels.csv).", rich_help_panel="Your own images")] = None,
    size: Annotated[int | None, typer.Option(
        help="Image tasks: side length the images are resized to (medmnist:NAME: 28, 64, 128, "
             "224).", rich_help_panel="Your own images")] = None,
    channels: Annotated[int | None, typer.Option(
        help="images:FOLDER tasks: 1 (grayscale) or 3 (colour).",
        rich_help_panel="Your own images")] = None,
    weights: Annotated[Path | None, typer.Option(
        help="Image models: start from your own weights (a torch state dict); layers whose "
             "name or shape differs stay randomly initialised.",
        rich_help_panel="Your own images")] = None,
    window: Annotated[float | None, typer.Option(
        help="ehr:PATH tasks: hours from the start of each stay the model sees (default: the "
             "whole stay, predicting at its end).", rich_help_panel="Your own records")] = None,
    source: Annotated[str | None, typer.Option(
        help="ehr:PATH tasks: physionet2012, mimic3, mimic4, eicu, fhir, meds or omop (default: detected).",
        rich_help_panel="Your own records")] = None,
    notes: Annotated[bool, typer.Option(
        "--notes", help="ehr:PATH tasks: also read the records' clinical notes (FHIR "
                        "DocumentReference, OMOP NOTE): each coded concept the NLP pipeline finds "
                        "becomes an event, negated or uncertain ones marked so.",
        rich_help_panel="Your own records")] = False,
    channel: Annotated[str | None, typer.Option(
        help="signals:FOLDER tasks: the channel to read, by name (e.g. MLII) or position (0 = "
             "the first, the default); `predict` reads the same one.",
        rich_help_panel="Your own recordings")] = None,
    min_seconds: Annotated[float | None, typer.Option(
        "--min-seconds", min=0.0, help="signals:FOLDER tasks: skip recordings shorter than this "
                                       "(default 5).", rich_help_panel="Your own recordings")] = None,
    smiles: Annotated[str | None, typer.Option(
        help="molecules:PATH tasks: the SMILES column (default smiles).",
        rich_help_panel="Molecules")] = None,
    split: Annotated[str | None, typer.Option(
        help="molecules:PATH and moleculenet:NAME tasks: scaffold (default: Bemis-Murcko "
             "scaffolds, balanced), random or stratified.", rich_help_panel="Molecules")] = None,
    tautomer: Annotated[bool, typer.Option(
        "--tautomer", help="molecules:PATH and moleculenet:NAME tasks: also replace each molecule "
                           "by RDKit's canonical tautomer.", rich_help_panel="Molecules")] = False,
    dp_epsilon: Annotated[float | None, typer.Option(
        "--dp-epsilon", min=0.0, help="Train with differential privacy (DP-SGD, Opacus) spending "
                                      "at most this epsilon; metrics.json and the report record "
                                      "what was spent. Torch models without batch norm (mlp ...).",
        rich_help_panel="Privacy")] = None,
    dp_delta: Annotated[float | None, typer.Option(
        "--dp-delta", help="DP delta (default 1 / (10 x training rows)).",
        rich_help_panel="Privacy")] = None,
    max_grad_norm: Annotated[float | None, typer.Option(
        "--max-grad-norm", help="DP-SGD: each example's gradient is clipped to this norm "
                                "(default 1.0).", rich_help_panel="Privacy")] = None,
    nproc: Annotated[int | None, typer.Option(
        "--nproc", min=1, help="Data-parallel training: this many processes on this node under "
                               "torchrun (gloo on CPU, one GPU each with NCCL); each global batch "
                               "of --param batch_size rows is split between them.",
        rich_help_panel="Scaling out")] = None,
    nnodes: Annotated[int, typer.Option(
        "--nnodes", min=1, help="With --nproc: the number of machines taking part (run the same "
                                "command on each, with its --node-rank).",
        rich_help_panel="Scaling out")] = 1,
    node_rank: Annotated[int, typer.Option(
        "--node-rank", min=0, help="With --nnodes: this machine's number, 0 to nnodes-1 (0 "
                                   "writes the run).", rich_help_panel="Scaling out")] = 0,
    rdzv: Annotated[str | None, typer.Option(
        "--rdzv", help="With --nnodes: HOST:PORT of node 0 that every node can reach (torchrun's "
                       "c10d rendezvous).", rich_help_panel="Scaling out")] = None,
    rdzv_timeout: Annotated[int, typer.Option(
        "--rdzv-timeout", min=1, help="Seconds to wait for every node to join before failing.",
        rich_help_panel="Scaling out")] = 300,
) -> None:
    """Train TASK, evaluate it with CIs, audit subgroups, write report.html; print the run path.

    TASK is a name from `iatros tasks`; csv:PATH for your own table
    (e.g. `iatros train csv:cohort.csv --target died --patient-id mrn --attr sex`);
    images:FOLDER for your own images with a labels CSV; medmnist:NAME for any MedMNIST set;
    ehr:PATH for health records (FHIR, MIMIC, eICU, PhysioNet 2012 or a converted folder),
    e.g. `iatros train ehr:bundles/ --target readmit_30d` or `--target code:SNOMED//44054006@365`;
    molecules:PATH for your own assay table
    (`iatros train molecules:assay.csv --smiles SMILES --target pIC50`), moleculenet:NAME for a
    MoleculeNet set with another split (`--split random`).
    """
    from iatros import api

    if target and len(target) > 1 and not task.startswith("molecules:"):
        raise typer.BadParameter(f"--target was given {len(target)} times; only molecules:PATH "
                                 f"tasks train several outcomes at once (this task predicts "
                                 f"one: give one --target)", param_hint="--target")
    options = {k: v for k, v in {"target": target[0] if target else None,
                                 "targets": target if target and len(target) > 1 else None,
                                 "smiles": smiles, "split": split, "tautomer": tautomer or None,
                                 "time": time_col, "event": event_col,
                                 "kind": kind, "positive": positive,
                                 "patient_id": patient_id, "attributes": attr or None,
                                 "drop": drop or None, "labels": str(labels) if labels else None,
                                 "size": size, "channels": channels, "window": window,
                                 "source": source, "notes": notes or None,
                                 "channel": (int(channel) if channel and channel.isdigit()
                                             else channel),
                                 "min_seconds": min_seconds,
                                 "allow_text_feature": allow_text_feature or None}.items()
               if v is not None}
    if nproc is None and (nnodes != 1 or node_rank or rdzv):
        raise typer.BadParameter("--nnodes, --node-rank and --rdzv take effect with --nproc N",
                                 param_hint="--nproc")
    if nproc is not None and not os.environ.get("TORCHELASTIC_RUN_ID"):
        argv = sys.argv[1:]
        if argv[:1] != ["train"]:
            raise typer.BadParameter("--nproc relaunches this command line under torchrun: run "
                                     "it as `iatros train ...`", param_hint="--nproc")
        api.train_distributed(argv, task, nproc=nproc, nnodes=nnodes, node_rank=node_rank,
                                     rdzv=rdzv, rdzv_timeout=rdzv_timeout, data_root=data_root,
                                     out=out_dir, model=model, resume=resume,
                                     task_options=options)
        return  # rank 0 printed the run's summary and path
    params, train_settings = api.split_trial(api.parse_params(param or []))
    if weights:
        params["weights"] = str(weights)
    train_settings.update({k: v for k, v in {"dp_epsilon": dp_epsilon, "dp_delta": dp_delta,
                                             "max_grad_norm": max_grad_norm}.items()
                           if v is not None})
    path = api.train(task, data_root=data_root, out=out_dir, epochs=epochs, seed=seed,
                     model=model, resume=resume, device=device, progress=_progress(progress),
                     task_options=options, ensemble=ensemble, cross_fit=cross_fit,
                     params=params or None, train_overrides=train_settings or None,
                     eval_options=api.EvalOptions(n_boot=n_boot, threshold=_threshold(threshold),
                                                  seed=seed, keep_text=keep_text),
                     select_folds=select_folds, cv=cv)
    if int(os.environ.get("RANK", "0") or 0) > 0:
        return  # a data-parallel rank other than 0: rank 0 reports the run
    err.print(api.summary_line(path), soft_wrap=True)
    print(path)


@app.command("tune")
def tune_cmd(
    task: Annotated[str, typer.Argument(help="Task name (see `iatros tasks`).")],
    space: Annotated[list[str], typer.Option(
        "--space", help="NAME=V1,V2,... values to try for a model parameter or training setting "
                        "(repeatable), e.g. --space dropout=0,0.1,0.3 --space hidden=32x32,64x64x64 "
                        "--space lr=1e-3,3e-3.")],
    model: Annotated[str | None, typer.Option(help="Model name (default: the task's).")] = None,
    data_root: DataRoot = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the chosen run (default: $IATROS_HOME/runs/TASK-MODEL-TIME).")
    ] = None,
    max_trials: Annotated[int, typer.Option(
        min=1, help="Most settings to train; a larger grid is sampled at random (seeded).")] = 20,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum epochs (torch models).")] = None,
    ensemble: Annotated[int, typer.Option(
        min=1, help="Judge (and keep) each setting as an ensemble of N seeds: a steadier "
                    "validation score on small data.")] = 1,
    folds: Annotated[int, typer.Option(
        min=1, help="Score each setting by K-fold cross-validation over train + val (by "
                    "patient) instead of the one validation split; test is never used.")] = 1,
    cross_fit: Annotated[bool, typer.Option(
        "--cross-fit", help="With --folds K: keep the chosen setting as a cross-fit ensemble of "
                            "K networks, member k stopped early on fold k.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for the split, trials and sampling.")] = 0,
    n_boot: Boot = 1000,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bars (default: when stderr is a terminal).")
    ] = None,
    backend: Annotated[str, typer.Option(
        help="local (one setting after another, here) or ray (Ray Tune trials, several at once).",
        rich_help_panel="Scaling out")] = "local",
    address: Annotated[str | None, typer.Option(
        help="--backend ray: HOST:PORT of a running Ray cluster's head (default: start Ray "
             "locally). Every node needs iatros and the same data root.",
        rich_help_panel="Scaling out")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="--backend ray: asha stops settings whose validation score falls behind after "
             "each epoch (Asynchronous Successive Halving); stopped settings are never chosen.",
        rich_help_panel="Scaling out")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="--backend ray: settings trained at once (default: as many as the CPUs "
                    "allow).", rich_help_panel="Scaling out")] = None,
    cpus_per_trial: Annotated[int, typer.Option(
        "--cpus-per-trial", min=1, help="--backend ray: CPU cores (torch threads) each trial uses.",
        rich_help_panel="Scaling out")] = 1,
) -> None:
    """Search model settings on the validation split, then train and report the best one.

    Each setting trains a full run; only validation scores choose, so the test split stays
    untouched until the chosen run is scored. The run's tuning.json lists every trial.
    `--backend ray` runs the settings as Ray Tune trials, several at once (local Ray, or the
    cluster at --address), optionally stopping weak ones early (`--scheduler asha`).
    """
    from iatros import api

    path = api.tune(task, api.parse_space(space), model=model, data_root=data_root, out=out_dir,
                    seed=seed, max_trials=max_trials, epochs=epochs, ensemble=ensemble, folds=folds,
                    cross_fit=cross_fit, progress=_progress(progress),
                    eval_options=api.EvalOptions(n_boot=n_boot, seed=seed), backend=backend,
                    address=address, scheduler=scheduler, workers=workers,
                    cpus_per_trial=cpus_per_trial)
    tuning = api.run_tuning(path)
    scored_on = "val" if tuning.get("folds", 1) == 1 else f"{tuning['folds']}-fold CV"
    for row in tuning["trials"]:
        mark = "*" if row["trial"] == tuning["chosen"] else " "
        val = "n/a" if row["val"] is None else f"{row['val']:.4f}"
        if row.get("stopped_after_epoch") is not None:
            val = f"stopped after epoch {row['stopped_after_epoch']}"
        elif row.get("error"):
            val = f"failed: {row['error']}"
        err.print(f"{mark} trial {row['trial']}: {scored_on} {tuning['metric']} {val}  {row['settings']}",
                  soft_wrap=True)
    err.print(f"chosen trial {tuning['chosen']}: {api.summary_line(path)}", soft_wrap=True)
    print(path)


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data_root: DataRoot = None,
    split: Annotated[str | None, typer.Option(
        help="train, val, test or all (default: test; on another data root all rows, or its "
             "test part when that copy ships a split, e.g. MIT-BIH DS2).")] = None,
    n_boot: Boot = 1000,
    as_json: Json = False,
    trust: Trust = False,
) -> None:
    """Score a finished run on a split, or on another copy of its dataset (--data-root)."""
    from iatros import api

    result = api.evaluate(run, data_root=data_root, split=split,
                          eval_options=api.EvalOptions(n_boot=n_boot), trust=trust)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    (part,) = result["splits"].values()
    table = Table(title=f"{result['task']} ({result['model']}) on {result['split']} of "
                        f"{result['data_root']}")
    for col in ("metric", "value (95% CI)", "n"):
        table.add_column(col)
    for name, entry in part.items():
        table.add_row(name, _fmt(entry), str(entry.get("n")))
    out.print(table)
    print(result["path"])


@app.command("audit")
def audit_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    by: Annotated[str | None, typer.Option(
        "--by", help="Sensitive attribute, e.g. sex or age_group.")] = None,
    split: Annotated[str, typer.Option(help="val or test.")] = "test",
    membership: Annotated[bool, typer.Option(
        "--membership", help="Privacy audit instead: a loss-threshold membership-inference attack "
                             "on training vs test patients (attack AUROC with CI; 0.5 = no leak).")] = False,
    n_boot: Boot = 1000,
    as_json: Json = False,
    trust: Trust = False,
) -> None:
    """Subgroup (fairness) audit: each metric per group, the largest gaps, EOD and DPD; or, with
    --membership, how much the model reveals about who it was trained on."""
    from iatros import api

    if membership:
        found = api.membership_inference(run, n_boot=n_boot, trust=trust)
        if as_json:
            print(json.dumps(found, indent=2))
            return
        spent = found.get("privacy")
        out.print(f"membership inference ({found['attack']}): attack AUROC {_fmt(found['auroc'])}, "
                  f"advantage {found['advantage']:.3f}, {found['members']} members vs "
                  f"{found['non_members']} non-members"
                  + (f"; trained with DP, epsilon {spent['epsilon']:.3g}" if spent else
                     "; trained without differential privacy"), soft_wrap=True)
        return
    if by is None:
        raise typer.BadParameter("give --by ATTRIBUTE (fairness audit) or --membership (privacy)")
    result = api.audit(run, by=by, split=split, eval_options=api.EvalOptions(n_boot=n_boot),
                       trust=trust)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    groups = result["groups"]
    metric_names = list(next(iter(groups.values()))["metrics"]) if groups else []
    table = Table(title=f"audit by {by} ({split} split)")
    table.add_column("group")
    table.add_column("n")
    for m in metric_names:
        table.add_column(m)
    for label, g in groups.items():
        table.add_row(label, str(g["n"]), *(_fmt(g["metrics"].get(m)) for m in metric_names))
    table.add_row("largest gap", "", *(_fmt(result["gaps"].get(m)) for m in metric_names))
    out.print(table)
    for key in ("equalized_odds_difference", "demographic_parity_difference"):
        if key in result:
            out.print(f"{key.replace('_', ' ')}: {_fmt(result[key])}")
    if result.get("small_groups"):
        out.print(f"groups too small to compare: {', '.join(result['small_groups'])}")


@app.command("predict")
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    files: Annotated[list[Path] | None, typer.Argument(
        help="Image files (PNG, JPEG, DICOM, NIfTI) for image runs; CSV files for tabular runs; "
             "note files for text runs (NER taggers and note classifiers); recordings (WFDB, "
             "EDF, CSV, DICOM ECG) for signal runs; CSV (a smiles column) or .smi files for "
             "molecule runs.")] = None,
    smiles: Annotated[list[str] | None, typer.Option(
        "--smiles", help="Molecule runs: a SMILES to screen (repeatable).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for heat maps and figures (default: RUN/predictions/TIME).")] = None,
    save_csv: Annotated[Path | None, typer.Option(
        "--csv", help="Also write one row per input (failed ones with their error) to this CSV; "
                      "the table is then not printed.")] = None,
    no_explain: Annotated[bool, typer.Option(
        "--no-explain", help="Skip Grad-CAM heat maps, word attributions, signal figures and "
                             "atom attributions.")] = False,
    as_json: Json = False,
    trust: Trust = False,
) -> None:
    """Predict with a finished run: calibrated probabilities per class and a heat-map path
    (images), a survival curve per patient (survival runs), entities with character offsets
    (NER runs), a specialty with the words that drove it (note classifiers), or for each
    recording (signal runs) probabilities per recording and per 50%-overlapping window, heart
    rate, signal quality and a figure of the trace with its windows' classes. Molecule runs
    screen SMILES (--smiles, CSV or .smi files): prediction, uncertainty (ensembles),
    nearest-neighbour similarity to the training set and the applicability flag per molecule,
    atom attributions for the first 25; invalid SMILES are listed, not fatal."""
    from iatros import api

    inputs = [*(files or []), *(f"smiles:{s}" for s in smiles or [])]
    if not inputs:
        raise typer.BadParameter("give input files, or --smiles for a molecule run")
    started = time.perf_counter()
    results = api.predict(run, inputs, out=out_dir, explain=not no_explain, trust=trust)
    seconds = time.perf_counter() - started
    err.print(f"{len(results)} input(s) in {seconds:.1f} s ({len(results) / max(seconds, 1e-9):.1f} "
              f"per second)", soft_wrap=True)
    if save_csv is not None:
        api.results_table(results).to_csv(save_csv, index=False)
        err.print(f"results: {save_csv}", soft_wrap=True)
    if as_json:
        print(json.dumps(results, indent=2))
        report_failures(results)
        return
    if save_csv is not None:
        report_failures(results)
        return
    table = Table(title=f"predictions of {run}")
    for col in ("input", "prediction", "probabilities / details", "heat map / figure"):
        table.add_column(col, overflow="fold")
    for r, cells in zip(results, api.prediction_cells(run, results, trust=trust), strict=True):
        table.add_row(str(r["input"]), *cells)
    out.print(table)
    report_failures(results)


data_app = typer.Typer(help="Datasets in the data home.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(nlp_app, name="nlp")
app.add_typer(deid_app, name="deid")
app.add_typer(pgx_app, name="pgx")
app.add_typer(monitor_app, name="monitor")
app.command("serve")(serve_cmd)
app.command("federate")(federate_cmd)
app.command("federate-certificates")(certificates_cmd)
app.command("federate-register")(register_cmd)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(teams_app, name="care-teams")
app.add_typer(audit_app, name="audit-log")


@data_app.command("download")
def download_cmd(
    dataset: Annotated[str, typer.Argument(help="medmnist:NAME, e.g. medmnist:dermamnist.")],
    size: Annotated[int, typer.Option(help="Image size: 28, 64, 128 or 224 (3D: 28, 64).")] = 28,
    data_root: DataRoot = None,
) -> None:
    """Download a dataset file from its official source into the data root (checksum verified)."""
    from iatros import api

    print(api.download(dataset, size=size, data_root=data_root))


@data_app.command("convert")
def convert_cmd(
    source: Annotated[str, typer.Argument(
        help="physionet2012, mimic3, mimic4, eicu, fhir, meds (a MEDS dataset) or omop (an OMOP CDM "
             "folder or zip).")],
    path: Annotated[str, typer.Argument(
        help="The source's folder (or one FHIR file, an OMOP zip, or an OMOP database URL such as "
             "postgresql+psycopg://user@host/db or duckdb:///cdm.duckdb; put the password in "
             "~/.pgpass rather than the URL).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for events.parquet, "
                                          "stays.parquet, manifest.json and the MEDS copy "
                                          "(data/, metadata/).")],
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal).")
    ] = None,
    schema: Annotated[str | None, typer.Option(
        help="OMOP database URL: the schema holding the CDM tables (default: the database's).")
    ] = None,
) -> None:
    """Convert health records into the event format (incremental: a second run reads the cache).

    Prints one line: patients, stays, events, and skipped records with their reasons (the full
    list, with file and line or resource id, is in OUT/manifest.json).
    """
    from iatros import api

    print(api.convert(source, path, out_dir, progress=_progress(progress), schema=schema))


signals_app = typer.Typer(help="Physiological signals (ECG): R-peak detectors scored against a record's "
                               "reference beat annotations.", no_args_is_help=True)
app.add_typer(signals_app, name="signals")


def _pct(value: float | None) -> str:
    """A ratio as a percentage with two decimals, "-" when undefined."""
    return "-" if value is None else f"{100 * value:.2f}"


@signals_app.command("rpeaks")
def signals_rpeaks_cmd(
    records: Annotated[list[Path], typer.Argument(
        help="WFDB records, with or without suffix (mitdb/100, mitdb/100.hea), or folders: every "
             "record inside with a reference annotation file.")],
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="R-peak detector (repeatable; default neurokit), a neurokit2 method name such "
                         "as pantompkins1985, hamilton2002, christov2004, elgendi2010, kalidas2017; "
                         "an unknown name is refused with the full list.")] = None,
    reference: Annotated[str, typer.Option(
        help="Annotation file extension holding the reference beats (atr: the cardiologists' "
             "annotations of MIT-BIH).")] = "atr",
    channel: Annotated[str, typer.Option(
        help="Channel to detect on, by position or name (0: MLII on MIT-BIH).")] = "0",
    tolerance: Annotated[float, typer.Option(
        min=0.0, help="Seconds a detection may lie from its reference beat (EC57: 0.150).")] = 0.150,
    skip: Annotated[float, typer.Option(
        min=0.0, help="Seconds left out at the start and end of each record (default: none).")] = 0.0,
    score_vf: Annotated[bool, typer.Option(
        "--score-vf", help="Also score ventricular flutter / fibrillation episodes ([ to ] "
                           "annotations), which EC57 and bxb leave out.")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal).")] = None,
    as_json: Json = False,
) -> None:
    """Detect R peaks and score them against the reference beats, ANSI/AAMI EC57 style: a detection
    within --tolerance of a beat is a true positive (one-to-one, closest pairs first), a missed beat
    a false negative, any other detection a false positive. Prints per record and method beats, TP,
    FN, FP, sensitivity Se = TP/(TP+FN) and positive predictivity +P = TP/(TP+FP), and a pooled row
    per method (TP, FN, FP summed over records). Ventricular flutter / fibrillation episodes are
    not scored, as EC57 says (--score-vf scores them). An unreadable record is named and the rest
    go on.

    RECORDS are WFDB records with or without a suffix (mitdb/100, mitdb/100.hea, mitdb/100.atr) or
    folders: every record inside (recursively) that has a reference annotation file is scored."""
    from iatros.api import signals as signals_api

    results = signals_api.rpeaks(records, methods=method or ["neurokit"], reference=reference,
                                 channel=int(channel) if channel.lstrip("-").isdigit() else channel,
                                 tolerance_s=tolerance, skip_s=skip, score_vf=score_vf,
                                 progress=_progress(progress))
    totals = signals_api.pooled_by_method(results)
    if as_json:
        print(json.dumps({"records": results, "pooled": totals}, indent=2))
        report_failures(results)
        return
    table = Table(title=f"R peaks vs .{reference} beats (within {tolerance * 1000:.0f} ms)")
    for col in ("record", "method", "beats", "TP", "FN", "FP", "Se %", "+P %"):
        table.add_column(col, justify="left" if col in ("record", "method") else "right")
    for r in results:
        if "error" not in r:
            table.add_row(r["record"], r["method"], *(str(r[k]) for k in ("beats", "tp", "fn", "fp")),
                          _pct(r["sensitivity"]), _pct(r["positive_predictivity"]))
    for t in totals:
        table.add_row(f"pooled ({t['records']} records)", t["method"],
                      *(str(t[k]) for k in ("beats", "tp", "fn", "fp")), _pct(t["sensitivity"]),
                      _pct(t["positive_predictivity"]), style="bold")
    out.print(table)
    report_failures(results)


@app.command("explain")
def explain_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder of an image, health-record or molecule "
                                             "model.")],
    items: Annotated[list[str] | None, typer.Argument(
        help="Image files (PNG, JPEG, DICOM, NIfTI), or stay ids for a health-record run.")] = None,
    smiles: Annotated[list[str] | None, typer.Option(
        "--smiles", help="Molecule runs: a SMILES to explain (repeatable).")] = None,
    method: Annotated[str, typer.Option(help="Images: gradcam or gradcampp.")] = "gradcam",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the figures.")] = None,
    data_root: Annotated[Path | None, typer.Option(
        help="Health records: the copy holding the stays (default: the run's data root).")] = None,
    trust: Trust = False,
) -> None:
    """What drove a prediction: Grad-CAM overlays for images; for health-record runs
    (GRU-D, event Transformer), integrated gradients per variable and hour for each stay id,
    as a figure and explanations.json; for molecule runs (--smiles), atom attributions drawn on
    the molecule (SVG): integrated gradients for graph networks, atom masking otherwise."""
    from iatros import api

    items = [*(items or []), *(f"smiles:{s}" for s in smiles or [])]
    if not items:
        raise typer.BadParameter("give image files, stay ids, or --smiles for a molecule run")
    if api.run_modality(run, trust=trust) == "ehr":
        for r in api.explain_records(run, items, data_root=data_root, out=out_dir, trust=trust):
            top = ", ".join(f"{v['variable']} {v['attribution']:+.3f}" for v in r["variables"][:3])
            print(f"{r['stay_id']}\t{r['caption']}\t{top}\t{r['path']}")
        return
    results = api.predict(run, [Path(i) for i in items], out=out_dir, method=method, trust=trust)
    for r in results:
        if "error" not in r:
            print(f"{r['input']}\t{r['prediction']}\t{r.get('heatmap') or r.get('figure', '-')}")
    report_failures(results)


@app.command("report")
def report_cmd(run: Annotated[Path, typer.Argument(help="Run folder.")], trust: Trust = False) -> None:
    """Redraw the figures and rewrite RUN/report.html."""
    from iatros import api

    print(api.report(run, trust=trust))


@app.command("verify")
def verify_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    seal: Annotated[bool, typer.Option(
        "--seal", help="Write a manifest for a folder that has none (made before manifests); "
                       "check the folder first: from then on, any change is detected.")] = False,
    as_json: Json = False,
) -> None:
    """Check every file of a run folder against its manifest (sha256) and the registry's record;
    exits 1 when anything changed, is missing or was added."""
    from iatros import api

    result = api.verify(run, seal=seal)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for key in ("changed", "missing", "added"):
            for name in result[key]:
                print(f"{key}\t{name}")
        registry = {True: "matches the registry", False: "DIFFERS from the registry's record",
                    None: "not registered"}[result["registry_matches"]]
        print(f"{'ok' if result['ok'] else 'MISMATCH'}: {result['path']} (manifest sha256 "
              f"{result['manifest_sha256']}, {registry})")
    if not result["ok"]:
        raise typer.Exit(1)


runs_app = typer.Typer(help="The registry of finished runs.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs_cmd(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Only runs of this task.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50,
    as_json: Json = False,
) -> None:
    """List registered runs with task, date and headline test metric."""
    from iatros import api

    if ctx.invoked_subcommand is not None:
        return
    entries = api.runs(task, limit)
    if as_json:
        print(json.dumps([e.__dict__ for e in entries], indent=2, default=str))
        return
    table = Table(title="registered runs (newest first)")
    for col in ("id", "task", "model", "created", "test metric (95% CI)", "n", "path"):
        table.add_column(col, overflow="fold")
    for e in entries:
        entry = {"value": e.value, "ci95": [e.ci_low, e.ci_high]}
        table.add_row(str(e.id), e.task, e.model, e.created.strftime("%Y-%m-%d %H:%M"),
                      f"{e.metric} {_fmt(entry)}", str(e.n), e.path)
    out.print(table)


@runs_app.command("register")
def register_cmd(run: Annotated[Path, typer.Argument(help="Run folder.")]) -> None:
    """Register a finished run that training could not register (the registry was down)."""
    from iatros import api

    entry = api.register(run)
    print(f"registered run {entry.id}: {entry.path}")


@app.command("promote")
def promote_cmd(
    run: Annotated[str, typer.Argument(help="Run folder or registry id.")],
    name: Annotated[str, typer.Option("--name", help="Model name to version.")],
    stage: Annotated[str, typer.Option(help="candidate, staging or production.")] = "candidate",
    trust: Trust = False,
) -> None:
    """Promote a run to the next version of a named model (its folder must be unchanged since it
    was registered)."""
    from iatros import api

    mv = api.promote(run, name, stage, trust=trust)
    print(f"{mv.name} v{mv.version} ({mv.stage}) <- run {mv.run.id} {mv.run.path}")


@app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the demo runs.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
) -> None:
    """Train and evaluate the demo tasks offline, write and register their reports."""
    from iatros import api

    rows = api.demo(out_dir, progress=_progress(progress))
    table = Table(title="iatros demo: test-set results (95% bootstrap CI, patients resampled)")
    for col in ("task", "model", "metric (95% CI)", "n", "seconds"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["task"], r["model"], f"{r['metric']} {_fmt(r)}", str(r["n"]),
                      str(r["seconds"]))
    out.print(table)
    print("reports:")
    for r in rows:
        print(f"  {r['report']}")
    print(Path(rows[0]["report"]).parent.parent)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (so redirection and test capture see it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _setup_logging() -> None:
    logger = logging.getLogger("iatros")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(os.environ.get("IATROS_LOG", "INFO"))


def main() -> None:
    """Entry point: user errors print one line and exit 2, without a traceback."""
    _setup_logging()
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        app()
    except IatrosError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
