"""Running the CLI in-process from tests."""

from __future__ import annotations

import sys

from iatros.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `iatros ARGS` in-process; return (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["iatros", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err
