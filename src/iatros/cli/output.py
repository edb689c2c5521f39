"""What every command prints the same way: progress bars by default on a terminal, and a batch's
failed inputs (the command fails only when every input did)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import typer

from iatros.errors import ConfigError


def progress_flag(flag: bool | None) -> bool:
    """--progress/--no-progress, defaulting to whether stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


def report_failures(results: Sequence[Mapping[str, Any]]) -> None:
    """Name each failed input on stderr; an error when nothing succeeded."""
    failed = [r for r in results if "error" in r]
    for r in failed:
        typer.echo(f"failed: {r['error']}", err=True)
    if failed and len(failed) == len(results):
        raise ConfigError(f"all {len(results)} input(s) failed (see above)")
    if failed:
        typer.echo(f"{len(failed)} of {len(results)} input(s) failed; the others are in the output",
                   err=True)
