"""R-peak detection on MIT-BIH Arrhythmia records, every neurokit2 detector that runs here, beside
published figures.

Records: the 26 annotated records in DATA_ROOT/mitbih_arrhythmia/mitdb/ (the 22 of de Chazal et al.
2004's training set DS1 and the 4 paced records 102, 104, 107, 217) and record 100
(record100_wfdb/): 27 records, 30 minutes each at 360 Hz. Each detector runs on the first channel
(MLII) at the native rate through `iatros signals rpeaks` (iatros.api.signals.rpeaks); its
detections are matched one-to-one to the cardiologists' beat annotations (.atr) within 150 ms
(ANSI/AAMI EC57), the whole record scored. Se and +P are gross statistics: TP, FN and FP summed
over the records. A detector that fails, or takes more than --max-seconds on record 100, is left
out and named in the notes. The table goes to benchmarks/results/signals.json.

    python benchmarks/signals.py --data-root ../shared/data [--methods neurokit pantompkins1985]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from readme_tables import Table, command_line, timing_note, write_tables

TARGET = 0.995
# names iatros offers that run the same neurokit2 detector as another name in the list
ALIASES = {"asi": "rodrigues2021"}
# neurokit2 detectors iatros's processing module does not offer (so `iatros signals` cannot run them)
NOT_OFFERED = "gamboa2008, slopesumfunction, khamis2016, emrich2023 (needs ts2vg, not installed)"
# method -> (published figure on MIT-BIH, source as published); only figures checked against the
# paper's own abstract; "-" where none is given here.
PUBLISHED: dict[str, tuple[str, str]] = {
    "pantompkins1985": ("99.3% of QRS complexes correctly detected",
                        "Pan & Tompkins, IEEE Trans Biomed Eng 32(3):230-236 (1985), abstract: \"for the "
                        "standard 24 h MIT/BIH arrhythmia database, this algorithm correctly detects 99.3 "
                        "percent of the QRS complexes\" (not split into Se and +P there)"),
    "christov2004": ("Se 99.74, +P 99.65",
                     "Christov, BioMed Eng OnLine 3:28 (2004), abstract, Algorithm 2 (Se 99.74%, "
                     "\"specificity\" Sp 99.65%, which is TP/(TP+FP)); all 48 full-length records, "
                     "tested by an independent expert; the algorithm takes one or more leads"),
    "martinez2004": ("Se and +P over 99.8",
                     "Martinez et al., IEEE Trans Biomed Eng 51(4):570-581 (2004), abstract: Se and "
                     "P+ over 99.8% on the MIT-BIH Arrhythmia Database"),
}


def records(root: Path) -> list[Path]:
    """The 27 annotated records: mitdb/ (DS1 + paced) and record100_wfdb/."""
    base = root / "mitbih_arrhythmia"
    found = sorted(h for h in (base / "mitdb").glob("*.hea") if h.with_suffix(".atr").is_file())
    found += sorted(h for h in (base / "record100_wfdb").glob("*.hea") if h.with_suffix(".atr").is_file())
    if not found:
        sys.exit(f"no annotated MIT-BIH records under {base} (expected mitdb/*.hea with .atr)")
    return found


class _Slow(Exception):
    """A detector ran past the time allowed on the probe record."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Slow


def screen(methods: list[str], probe: Path, max_seconds: float) -> tuple[list[str], dict[str, str]]:
    """Run each detector on one record; keep those that work within `max_seconds`, say why others not."""
    from iatros.api.signals import rpeaks

    kept, dropped = [], {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    for method in methods:
        start = time.perf_counter()
        signal.alarm(int(max_seconds) + 1)
        try:
            (row,) = rpeaks([probe], methods=[method])
        except _Slow:
            dropped[method] = f"stopped after {max_seconds:.0f} s on record {probe.stem}"
            continue
        finally:
            signal.alarm(0)
        if "error" in row:
            dropped[method] = f"fails on record {probe.stem}: {row['error'].split(': ', 1)[-1]}"
        elif row["seconds"] > max_seconds:
            dropped[method] = f"{row['seconds']:.0f} s on record {probe.stem}"
        else:
            kept.append(method)
        print(f"screen {method}: {dropped.get(method, 'ok')} ({time.perf_counter() - start:.1f} s)",
              file=sys.stderr, flush=True)
    signal.signal(signal.SIGALRM, previous)
    return kept, dropped


def _pct(value: float | None) -> str:
    """A ratio in percent with two decimals."""
    return "-" if value is None else f"{100 * value:.2f}"


def _worst(rows: list[dict]) -> str:
    """The record with the lowest min(Se, +P), as `record: Se / +P`."""
    row = min(rows, key=lambda r: min(r["sensitivity"] or 0.0, r["positive_predictivity"] or 0.0))
    return f"{row['record']}: {_pct(row['sensitivity'])} / {_pct(row['positive_predictivity'])}"


def table_rows(results: list[dict], totals: list[dict], n_records: int) -> list[list[str]]:
    """One row per method: counts, pooled Se and +P, worst record, seconds per record, published."""
    rows = []
    for total in totals:
        mine = [r for r in results if r.get("method") == total["method"] and "error" not in r]
        published = PUBLISHED.get(total["method"], ("-", ""))[0]
        met = total["sensitivity"] >= TARGET and total["positive_predictivity"] >= TARGET
        rows.append([f"`{total['method']}`", f"{total['records']} of {n_records}", str(total["beats"]),
                     str(total["tp"]), str(total["fn"]), str(total["fp"]),
                     f"**{_pct(total['sensitivity'])}**", f"**{_pct(total['positive_predictivity'])}**",
                     "yes" if met else "no", _worst(mine), f"{total['seconds'] / len(mine):.2f}",
                     published])
    return rows


def overdetection(results: list[dict]) -> list[str]:
    """A line per method that finds more than twice as many peaks as there are beats on some records."""
    lines = []
    methods = dict.fromkeys(r["method"] for r in results if "error" not in r)
    for method in methods:
        rows = [r for r in results if r.get("method") == method and "error" not in r]
        over = [r for r in rows if r["detected"] > 2 * r["beats"]]
        if over:
            shown = ", ".join(f"{r['record']}: {r['detected']} for {r['beats']}" for r in over[:4])
            lines.append(f"`{method}` finds more than twice as many peaks as there are beats on "
                         f"{len(over)} of {len(rows)} records ({shown}{', ...' if len(over) > 4 else ''}), "
                         "which is where its false positives come from.")
    return lines


def notes(args: argparse.Namespace, heads: list[Path], results: list[dict], dropped: dict[str, str],
          totals: list[dict]) -> list[str]:
    """What was scored and how, what was left out and why, the published figures' sources, timings."""
    beats = totals[0]["beats"] if totals else 0
    failed = sorted({f"{r['record']} ({r.get('method') or 'all methods'})" for r in results if "error" in r})
    met = [t["method"] for t in totals
           if t["sensitivity"] >= TARGET and t["positive_predictivity"] >= TARGET]
    lines = [
        f"Records: the 26 annotated records in mitbih_arrhythmia/mitdb/ (the 22 of DS1, de Chazal et al. "
        f"2004, and the 4 paced records 102, 104, 107, 217) plus record 100 (record100_wfdb/): {len(heads)} "
        f"records, {beats} reference beats. Channel 0 (MLII) at 360 Hz; reference beats are the .atr "
        "annotations with a beat symbol (N L R B A a J S V r F e j n E / f Q ?); rhythm, noise, "
        "non-conducted P (x) and ventricular flutter wave (!, record 207) annotations are not beats, so "
        "detections in 207's flutter episode count as FP.",
        f"Matching: a detection within {args.tolerance * 1000:.0f} ms of a reference beat is a TP, "
        "one-to-one, closest pairs first (ANSI/AAMI EC57's window); the whole record is scored (no "
        "learning period or edge seconds left out). Se = TP/(TP+FN), +P = TP/(TP+FP), in %, pooled as "
        "gross statistics (TP, FN, FP summed over the records); worst record: lowest min(Se, +P). "
        "Seconds: detection only (reading the record not included), mean per 30-minute record.",
        f"Target: Se and +P >= {100 * TARGET:.1f}% pooled; met by {', '.join(met) or 'none'}.",
    ]
    aliases = ", ".join(f"`{a}` (the same detector as `{m}`)" for a, m in ALIASES.items())
    lines.append(f"Every R-peak method iatros offers (iatros.data.signals.processing.RPEAK_METHODS) was "
                 f"tried, except {aliases}; each runs on the signal cleaned by its own neurokit2 "
                 f"cleaning where it has one, else neurokit's. neurokit2 also has {NOT_OFFERED}, "
                 "which iatros does not offer.")
    lines += overdetection(results)
    if dropped:
        lines.append("Left out: " + "; ".join(f"`{m}` ({why})" for m, why in dropped.items()) + ".")
    if failed:
        lines.append("Not scored (error): " + ", ".join(failed) + ".")
    lines.append("Published figures are the authors' own implementations on the MIT-BIH Arrhythmia "
                 "Database (Pan & Tompkins and Christov: all 48 records; this table has 27, the DS2 "
                 "records' annotations are not in the data except 100's), so they "
                 "are context, not a paired comparison; neurokit2's detectors are re-implementations. "
                 "Sources: " + "; ".join(f"`{m}`: {src}" for m, (_, src) in PUBLISHED.items()) + ". "
                 "Other detectors: no figure given here (\"-\").")
    lines.append(timing_note())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    parser.add_argument("--methods", nargs="*", help="detectors to score (default: every neurokit2 "
                                                     "method iatros offers)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="leave out a detector slower than this on record 100")
    parser.add_argument("--tolerance", type=float, default=0.150, help="match window in seconds")
    args = parser.parse_args()
    from iatros.api.signals import pooled_by_method, rpeaks
    from iatros.data.signals.processing import RPEAK_METHODS

    note = timing_note()
    heads = records(Path(args.data_root))
    methods = list(args.methods or [m for m in RPEAK_METHODS if m not in ALIASES])
    probe = next((h for h in heads if h.stem == "100"), heads[0])
    kept, dropped = screen(methods, probe, args.max_seconds)
    start = time.perf_counter()
    results = rpeaks(heads, methods=kept, tolerance_s=args.tolerance, progress=True) if kept else []
    print(f"scored {len(heads)} records x {len(kept)} methods in {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    totals = pooled_by_method(results)
    columns = ["method", "records", "beats", "TP", "FN", "FP", "Se %", "+P %", "target met",
               "worst record (Se / +P)", "s per record", "published on MIT-BIH"]
    lines = notes(args, heads, results, dropped, totals)
    lines[-1] = note
    table = Table(columns, table_rows(results, totals, len(heads)), command_line(), lines)
    print(write_tables("signals", {"rpeaks": table}))
    print(table.markdown())


if __name__ == "__main__":
    main()
