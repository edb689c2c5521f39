"""`iatros monitor`: the monitoring service from the outside; `replay` streams real PhysioNet 2012
ICU stays (or, with --ecg, PhysioNet 2017 single-lead ECGs as segments) into a running `iatros
serve` (docs/monitoring.md), keys read from named environment variables and never printed."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from iatros.errors import ConfigError

monitor_app = typer.Typer(
    help="Remote monitoring from the outside: replay real ICU stays or ECGs into a running "
         "`iatros serve` for demonstrations and load tests.",
    no_args_is_help=True)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLAIN_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}\Z")  # safe to repeat: no key is upper case only


def _key_from_env(name: str, option: str, role: str) -> str:
    """The API key held by environment variable `name`; an error naming the variable if unset.

    A name that could be a key pasted by mistake (lower case, or not a variable name at all) is
    never repeated in the error."""
    if not _ENV_NAME.match(name):
        raise ConfigError(f"{option} takes the NAME of an environment variable (e.g. "
                          f"IATROS_{role.upper()}_KEY), not the key itself; the value given is not "
                          f"shown")
    value = os.environ.get(name, "").strip()
    if not value:
        shown = name if _PLAIN_NAME.match(name) and not name.lower().startswith("iat_") else (
            "named by it (the name is not repeated: it may be a key)")
        raise ConfigError(f"{option}: environment variable {shown} is not set or empty: put a "
                          f"{role} API key in it (`iatros keys create NAME --role {role}` prints one)")
    return value


def _start(text: str | None) -> datetime | None:
    """--start as a tz-aware time; an error naming the expected form otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(f"--start {text!r} is not an ISO 8601 time with a zone "
                          f"(e.g. 2026-12-07T05:00:00Z)")
    return moment


@monitor_app.command("replay")
def replay_cmd(
    device_key_env: Annotated[str, typer.Option(
        "--device-key-env", help="Name of the environment variable holding the device API key "
                                 "(role device) that sends the readings; the key is never printed.")],
    system_key_env: Annotated[str, typer.Option(
        "--system-key-env", help="Name of the environment variable holding the hospital-system "
                                 "API key (role system) that admits the patients.")],
    url: Annotated[str, typer.Option(help="The service's base URL.")] = "http://127.0.0.1:8000",
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Folder holding physionet2012/ (set-a/, Outcomes-a.txt), or that "
                            "folder itself; with --ecg, physionet2017_af/ (training2017/ with "
                            "REFERENCE.csv) or that folder. Default: $IATROS_DATA, else "
                            "~/.cache/iatros/data.")] = None,
    set_name: Annotated[str | None, typer.Option(
        "--set", help="Which set folder to replay: PhysioNet 2012 set-a (default), set-b, "
                      "set-c; with --ecg, training2017 (default) or validation.")] = None,
    stays: Annotated[int | None, typer.Option(
        min=1, help="Replay a random sample of this many stays (with --ecg: recordings; "
                    "default: all of the set).")] = None,
    ecg: Annotated[bool, typer.Option(
        "--ecg", help="Replay PhysioNet 2017 single-lead ECGs (300 Hz) instead of ICU stays: "
                      "each recording is a patient, sent as ECG segments (readings with an ecg "
                      "field) for the rhythm model.")] = False,
    segment_seconds: Annotated[int, typer.Option(
        "--segment-seconds", min=5, max=55,
        help="With --ecg: seconds per segment (a tail under 5 s joins the one before).")] = 30,
    labels: Annotated[str | None, typer.Option(
        metavar="LABELS", help="With --ecg: only recordings with these REFERENCE.csv labels, "
                               "comma-separated: N normal, A atrial fibrillation, O other "
                               "rhythm, ~ too noisy (e.g. A,~).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --stays sample.")] = 0,
    speed: Annotated[float, typer.Option(
        min=0, help="How many times faster than real time the record runs: 60 sends an hour of "
                    "the stays a minute, 0 as fast as the server answers.")] = 60.0,
    batch_size: Annotated[int | None, typer.Option(
        min=1, max=5000, help="Most readings in one POST (a batch holds the readings due). "
                              "Default: 200, with --ecg 20 (a 30 s segment is about 60 kB of "
                              "JSON; the service takes 20 MB a request).")] = None,
    start_seq: Annotated[int, typer.Option(
        min=0, help="seq of the first reading; each next is one higher. To continue a replay with "
                    "the same device key, give the `next seq` it printed (a rerun with the same "
                    "value resends: the server reports duplicates, stores nothing twice).")] = 1,
    start: Annotated[str | None, typer.Option(
        metavar="ISO-TIME", help="When every stay begins: ISO 8601 with a zone, e.g. "
                                 "2026-12-07T05:00:00Z. Default: now less the longest stay, so "
                                 "no reading lies in the future.")] = None,
    ward: Annotated[str, typer.Option(help="Ward the patients are admitted to.")] = "replay",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal).")
    ] = None,
) -> None:
    """Stream PhysioNet 2012 ICU stays (or, with --ecg, PhysioNet 2017 ECGs) into a running
    service, faster than real time.

    Admits each stay's patient (id: the RecordID; already admitted is fine), then sends the
    readings of all stays in time order in batches (pulse, respiration rate, SaO2 as SpO2,
    systolic pressure, temperature, GCS as ACVPU, oxygen from FiO2 and ventilation), resending
    a batch after a connection error or a 5xx. With --ecg each recording is a patient (id: the
    record name) whose ECG is sent as segments of --segment-seconds; the recordings' labels are
    counted, never sent. Prints what was stored, duplicated and rejected (with reasons), the
    alerts raised and the next seq. Keys come from the named environment variables, never from
    the command line.
    """
    from iatros.monitoring.replay import SkipLog, ecg_readings, physionet_readings, replay
    from iatros.settings import get_settings

    device_key = _key_from_env(device_key_env, "--device-key-env", "device")
    system_key = _key_from_env(system_key_env, "--system-key-env", "system")
    began = _start(start)
    if labels is not None and not ecg:
        raise ConfigError("--labels chooses ECG recordings: use it with --ecg")
    root = get_settings(data_root, device="cpu").data_root  # device named: keeps torch unloaded
    skips = SkipLog()
    extra: dict[str, object] = {}
    if ecg:
        part = set_name or "training2017"
        wanted = None if labels is None else [x.strip() for x in labels.split(",") if x.strip()]
        chosen = ecg_readings(root, stays, seed, part=part, segment_s=segment_seconds,
                              labels=wanted, start=began, skips=skips)
        counts = Counter(r.label for r in chosen)
        extra = {"records": len(chosen), "labels": dict(sorted(counts.items()))}
        what = (f"{len(chosen)} ECG recordings ("
                + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")")
    else:
        part = set_name or "set-a"
        chosen = physionet_readings(root, part, stays, seed, start=began, skips=skips)
        extra = {"stays": len(chosen)}
        what = f"{len(chosen)} stays"
    n = sum(len(s.readings) for s in chosen)
    typer.echo(f"{what}, {n} readings from {part} ({skips.summary()})", err=True)
    summary = replay(url, device_key, system_key, chosen, speed=speed,
                     batch_size=batch_size or (20 if ecg else 200), start_seq=start_seq,
                     ward=ward, progress=progress)
    if as_json:
        typer.echo(json.dumps({**summary.as_dict(), **extra, "readings": n,
                               "skipped": skips.as_dict(examples=20)}, indent=2))
    else:
        for line in summary.lines():
            typer.echo(line)
