"""Benchmark results as JSON, and the README's tables rendered from them.

Each benchmark script calls `write_tables(NAME, {TABLE: Table(...)})`, which merges its tables into
`benchmarks/results/NAME.json` (with the machine and date). The README holds each table between

    <!-- results NAME/TABLE -->
    ...
    <!-- /results -->

and `python benchmarks/readme_tables.py` rewrites those blocks from the JSON (`--check` only
reports blocks that differ; tests/test_readme_tables.py runs the check), so no table is typed.
`IATROS_BENCH_RESULTS=DIR` writes and reads the JSON elsewhere (a benchmark run from another
checkout can still fill this one's results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("IATROS_BENCH_RESULTS") or HERE / "results")
README = HERE.parent / "README.md"
BLOCK = re.compile(r"<!-- results (?P<key>[\w.-]+/[\w.-]+) -->\n(?P<body>.*?)<!-- /results -->",
                   re.DOTALL)


@dataclass
class Table:
    """One README table: header, rows of display strings, the command that produced it, notes."""

    columns: list[str]
    rows: list[list[str]]
    command: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells for {len(self.columns)} columns")
        self.rows = [[str(c) for c in row] for row in self.rows]

    def markdown(self) -> str:
        """The table, then `Command: ...` and the notes, as README markdown."""
        escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(map(escape, self.columns)) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(map(escape, row)) + " |" for row in self.rows]
        lines += ["", f"Command: `{self.command}`"]
        lines += [f"{note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def machine() -> str:
    """What the numbers were measured on, in words."""
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} (no GPU unless stated)"


def shown(arg: str) -> str:
    """A command-line word as the README shows it: an absolute path that exists relative to the
    repository (the data root reads `../shared/data`), shell-quoted."""
    if os.path.isabs(arg) and os.path.exists(arg):
        arg = os.path.relpath(arg, HERE.parent)
    return shlex.quote(arg)


def command_line(argv: list[str] | None = None) -> str:
    """This benchmark's command line as `python benchmarks/SCRIPT.py ARGS` (words as `shown`)."""
    argv = list(sys.argv if argv is None else argv)
    return " ".join(["python", f"benchmarks/{Path(argv[0]).name}", *map(shown, argv[1:])])


def timing_note(load: bool = True) -> str:
    """How the timings were taken: cores, torch threads, and how busy the machine was at start
    (`load=False` for tables gathered from runs of several invocations, where the load at this
    one's start says nothing about them)."""
    threads = os.environ.get("IATROS_THREADS") or "unset (torch's default)"
    if not load:
        return (f"Timings: {os.cpu_count()}-core CPU machine, no GPU, IATROS_THREADS={threads}; "
                "the runs were made by several invocations, so how busy the machine was is given "
                "per run (other processes' CPU time, below).")
    avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"Timings: {os.cpu_count()}-core CPU machine, no GPU, IATROS_THREADS={threads}; other jobs "
            f"may share the cores (1-minute load average {avg:.1f} at the start), so seconds are "
            "upper bounds for an idle machine.")


def write_tables(name: str, tables: dict[str, Table], *, results: Path = RESULTS) -> Path:
    """Merge `tables` into results/NAME.json (other tables of NAME are kept); return the file."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    payload = json.loads(path.read_text()) if path.is_file() else {"benchmark": name, "tables": {}}
    for key, table in tables.items():
        payload["tables"][key] = {**asdict(table), "machine": machine(),
                                  "date": date.today().isoformat()}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_tables(results: Path = RESULTS) -> dict[str, Table]:
    """Every stored table by `NAME/TABLE`."""
    out: dict[str, Table] = {}
    for path in sorted(results.glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        for key, raw in payload.get("tables", {}).items():
            fields = {k: raw[k] for k in ("columns", "rows", "command", "notes") if k in raw}
            out[f"{payload.get('benchmark', path.stem)}/{key}"] = Table(**fields)
    return out


def render(text: str, tables: dict[str, Table]) -> tuple[str, list[str]]:
    """README text with every marked block replaced by its table; and the keys with no JSON."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        key = match["key"]
        if key not in tables:
            missing.append(key)
            return match[0]
        return f"<!-- results {key} -->\n{tables[key].markdown()}<!-- /results -->"
    return BLOCK.sub(fill, text), missing


def stale_blocks(readme: Path = README, results: Path = RESULTS) -> list[str]:
    """Marked README blocks that differ from (or lack) their JSON table."""
    text = readme.read_text(encoding="utf-8")
    tables = load_tables(results)
    rendered, missing = render(text, tables)
    stale = [f"{key}: no table in {results}" for key in missing]
    now = {m["key"]: m[0] for m in BLOCK.finditer(text)}
    for m in BLOCK.finditer(rendered):
        if m[0] != now.get(m["key"]):
            stale.append(f"{m['key']}: README differs from {results}/{m['key'].split('/')[0]}.json")
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description="Fill the README's benchmark tables from "
                                                 "benchmarks/results/*.json.")
    parser.add_argument("--check", action="store_true",
                        help="only list tables that differ; exit 1 if any does")
    args = parser.parse_args()
    if args.check:
        stale = stale_blocks()
        for line in stale:
            print(line)
        return 1 if stale else 0
    rendered, missing = render(README.read_text(encoding="utf-8"), load_tables())
    README.write_text(rendered, encoding="utf-8")
    for key in missing:
        print(f"no JSON for {key}: run its benchmark", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
