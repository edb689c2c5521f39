"""Reading notes safely: binary files, empty files and non-UTF-8 bytes get clear errors or are
decoded with a note of what happened; very long notes are cut into chunks at line breaks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iatros.errors import CorruptDataError

MAX_BYTES = 50_000_000  # refuse anything bigger: not a note
CHUNK_CHARS = 100_000  # spaCy's comfortable document size; longer notes are processed in chunks


class NoteError(CorruptDataError):
    """A file that cannot be read as a clinical note (names the file and why)."""


@dataclass
class Note:
    """A note's text and where it came from; `warnings` says how it was decoded."""

    source: str
    text: str
    encoding: str = "utf-8"
    warnings: tuple[str, ...] = ()


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or more than 10% control characters in the first 8 KiB."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return bool(head) and control / len(head) > 0.10


def mostly_unprintable(data: bytes) -> bool:
    """Under 70% of the first 8 KiB is printable ASCII or whitespace (for non-UTF-8 bytes)."""
    head = data[:8192]
    printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
    return bool(head) and printable / len(head) < 0.70


def decode_note(data: bytes, source: str) -> Note:
    """Text of a note's bytes: UTF-8 (with or without BOM), else cp1252, else latin-1."""
    if looks_binary(data):
        raise NoteError(f"{source}: looks like a binary file (NUL or control bytes), not a text note")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding != "utf-8-sig" and mostly_unprintable(data):
            break
        warnings = () if encoding == "utf-8-sig" else (
            f"not valid UTF-8; decoded as {encoding}",)
        return _checked(Note(source, text, "utf-8" if encoding == "utf-8-sig" else encoding,
                             warnings))
    if mostly_unprintable(data):
        raise NoteError(f"{source}: looks like a binary file (not UTF-8, and under 70% of its "
                        f"bytes are printable text), not a text note")
    text = data.decode("latin-1")
    return _checked(Note(source, text, "latin-1", ("not valid UTF-8 or cp1252; decoded as latin-1",)))


def _checked(note: Note) -> Note:
    if not note.text.strip():
        raise NoteError(f"{note.source}: the note is empty (no text after decoding)")
    return note


def read_note(path: str | Path) -> Note:
    """Read one note file; NoteError names the file for missing, huge, binary or empty files."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise NoteError(f"{path}: {size} bytes is too large for a note (limit {MAX_BYTES})")
        data = path.read_bytes()
    except OSError as e:
        raise NoteError(f"{path}: cannot read ({e.strerror or e})") from e
    return decode_note(data, str(path))


def chunks(text: str, size: int = CHUNK_CHARS) -> list[tuple[int, str]]:
    """(offset, piece) pairs covering `text`; cuts at a blank line, line break or space near
    `size` so no sentence is split when avoidable."""
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            window = text[start:end]
            for sep in ("\n\n", "\n", ". ", " "):
                cut = window.rfind(sep)
                if cut > size // 2:
                    end = start + cut + len(sep)
                    break
        out.append((start, text[start:end]))
        start = end
    return out
