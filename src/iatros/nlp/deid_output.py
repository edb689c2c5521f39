"""Where de-identified notes go: an output folder that can never overwrite the originals.

`check_out_dir` refuses an output folder equal to, or inside, any input folder (or the folder
of an input file): writing there would mix de-identified notes with the originals, or replace
them. `NoteWriter` writes one .txt per note (atomically, unique names) and refuses to write
over any input file, whatever the folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from iatros.errors import ConfigError


def _input_folders(paths: Sequence[str | Path]) -> list[Path]:
    """Each input folder, and the folder of each input file, resolved."""
    return [(p if p.is_dir() else p.parent).resolve() for p in map(Path, paths)]


def check_out_dir(paths: Sequence[str | Path], out_dir: str | Path) -> Path:
    """The resolved output folder; ConfigError when it is an input folder or inside one."""
    target = Path(out_dir).resolve()
    for folder in _input_folders(paths):
        if target == folder or folder in target.parents:
            raise ConfigError(f"--out-dir {out_dir} is {'the' if target == folder else 'inside the'} input "
                              f"folder {folder}: de-identified notes would sit beside (or replace) the "
                              f"originals; choose a folder outside every input folder")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out-dir {out_dir} exists and is not a folder")
    return target


class NoteWriter:
    """Writes de-identified notes into a checked output folder, never over an input file."""

    def __init__(self, paths: Sequence[str | Path], out_dir: str | Path) -> None:
        self.folder = check_out_dir(paths, out_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.inputs = {p.resolve() for p in map(Path, paths) if p.is_file()}
        self.inputs |= {f.resolve() for p in map(Path, paths) if p.is_dir()
                        for f in p.rglob("*") if f.is_file()}
        self.written: set[str] = set()

    def write(self, source: str, text: str) -> Path:
        """Write `text` as the de-identified copy of `source`; return its path."""
        name = Path(source.replace(":", "_")).name
        stem = name if name.endswith(".txt") else f"{name}.txt"
        while stem in self.written:
            stem = f"_{stem}"
        self.written.add(stem)
        path = self.folder / stem
        if path.resolve() in self.inputs:
            raise ConfigError(f"{path} is an input file; refusing to overwrite it")
        tmp = path.with_name(f".{stem}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return path
