"""`python -m iatros.cli`: the `iatros` command (how torchrun starts each training process)."""

from iatros.cli import main

main()
