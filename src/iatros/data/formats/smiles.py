"""SMILES: parsing with RDKit, standardisation with what changed recorded, Bemis-Murcko scaffolds,
and tables of molecules with one or more measured properties, read row by row so that a bad row
(unparseable SMILES, empty or non-numeric value, a molecule listed twice with conflicting labels)
is reported by its line and the rest of the file is kept.

Standardisation (`standardise`): RDKit's functional-group normalisation, the largest organic
fragment (salts and solvents removed), charges neutralised where a neutral form exists, and,
when asked, RDKit's canonical tautomer; the result is RDKit's canonical isomeric SMILES. Each
step that changed the molecule is named in `Standardised.changes`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.errors import ConfigError, CorruptDataError, MissingDataError

log = logging.getLogger("iatros")
_RDKIT_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
MAX_TAUTOMERS = 200  # RDKit's enumeration limit per molecule when canonicalising tautomers


def require_rdkit() -> Any:
    """The `rdkit.Chem` module, or a clear error saying how to install it."""
    try:
        from rdkit import Chem, rdBase
    except ImportError:  # pragma: no cover - the molecules extra is part of `make setup`
        raise ConfigError('molecules need RDKit: pip install "iatros[molecules]"') from None
    rdBase.LogToPythonLogger()
    return Chem


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_RDKIT_PREFIX.sub("", record.getMessage()).strip())


@contextmanager
def rdkit_messages() -> Iterator[list[str]]:
    """RDKit's warnings and errors raised inside the block, as a list (not printed)."""
    logger = logging.getLogger("rdkit")
    capture = _Capture()
    saved, propagate = logger.handlers[:], logger.propagate
    logger.handlers = [capture]
    logger.propagate = False
    try:
        yield capture.messages
    finally:
        logger.handlers, logger.propagate = saved, propagate


def parse(smiles: Any) -> tuple[Any, str | None]:
    """(RDKit molecule, None), or (None, why it is not a valid molecule) in RDKit's words."""
    Chem = require_rdkit()
    if smiles is None or (isinstance(smiles, float) and np.isnan(smiles)):
        return None, "empty SMILES"
    text = str(smiles).strip()
    if not text:
        return None, "empty SMILES"
    if any(c.isspace() for c in text):
        return None, f"SMILES {text[:60]!r} contains whitespace"
    with rdkit_messages() as messages:
        mol = Chem.MolFromSmiles(text, sanitize=False)
        if mol is None:
            said = next((m for m in messages if "Parse Error" in m), "syntax error")
            return None, f"unparseable SMILES {text[:60]!r}: {said}"
        problems = Chem.DetectChemistryProblems(mol)
        if problems:
            return None, f"invalid molecule {text[:60]!r}: {problems[0].Message()}"
        try:
            Chem.SanitizeMol(mol)
        except Exception as e:  # RDKit raises its own exception types
            return None, f"invalid molecule {text[:60]!r}: {e}"
    if mol.GetNumAtoms() == 0:
        return None, "empty molecule (no atoms)"
    return mol, None


@dataclass(frozen=True)
class Standardised:
    """One SMILES after standardisation: the canonical SMILES (None when invalid), the steps that
    changed it and, for an invalid one, why."""

    input: str
    smiles: str | None
    changes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.smiles is not None


@lru_cache(maxsize=4)
def _tools() -> tuple[Any, Any, Any, Any]:
    require_rdkit()
    from rdkit.Chem.MolStandardize import rdMolStandardize as S

    enumerator = S.TautomerEnumerator()
    enumerator.SetMaxTautomers(MAX_TAUTOMERS)
    return (S.Normalizer(), S.LargestFragmentChooser(preferOrganic=True), S.Uncharger(),
            enumerator)


@lru_cache(maxsize=200_000)
def standardise(smiles: str, tautomer: bool = False) -> Standardised:
    """Normalise functional groups, keep the largest (organic) fragment, neutralise charges and,
    with `tautomer`, take RDKit's canonical tautomer; record each step that changed something."""
    Chem = require_rdkit()
    mol, error = parse(smiles)
    if mol is None:
        return Standardised(str(smiles), None, (), error)
    normalizer, chooser, uncharger, enumerator = _tools()
    changes: list[str] = []
    current = Chem.MolToSmiles(mol)
    steps = [("normalised functional groups", normalizer.normalize),
             ("neutralised charges", uncharger.uncharge)]
    if tautomer:
        steps.append(("canonical tautomer", enumerator.Canonicalize))
    try:
        with rdkit_messages():
            fragments = Chem.GetMolFrags(mol, asMols=True)
            if len(fragments) > 1:
                mol = chooser.choose(mol)
                kept = Chem.MolToSmiles(mol)
                removed = sorted({Chem.MolToSmiles(f) for f in fragments} - {kept})
                changes.append(f"kept the largest fragment (removed {', '.join(removed)})")
                current = kept
            for name, step in steps:
                candidate = step(mol)
                written = Chem.MolToSmiles(candidate)
                # a step whose SMILES RDKit cannot read back is not taken
                if written != current and Chem.MolFromSmiles(written) is not None:
                    mol, current = candidate, written
                    changes.append(name)
    except Exception as e:  # RDKit's standardiser raises its own types on exotic inputs
        return Standardised(str(smiles), None, tuple(changes),
                            f"standardisation failed for {str(smiles)[:60]!r}: {e}")
    if Chem.MolFromSmiles(current) is None:
        return Standardised(str(smiles), None, tuple(changes),
                            f"RDKit cannot read back its own SMILES for {str(smiles)[:60]!r}")
    return Standardised(str(smiles), current, tuple(changes))


@lru_cache(maxsize=200_000)
def murcko_scaffold(smiles: str) -> str:
    """The Bemis-Murcko scaffold (ring systems and linkers, no chirality); "" for an acyclic
    molecule, which all share one scaffold."""
    require_rdkit()
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol, error = parse(smiles)
    if mol is None:
        raise CorruptDataError(f"no scaffold: {error}")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


# --------------------------------------------------------------------------------------------
# Tables of molecules and measured properties
# --------------------------------------------------------------------------------------------


@dataclass
class RowIssue:
    """One problem in a molecule table, by its line in the file (header = line 1)."""

    line: int
    column: str
    problem: str
    action: str  # what was done: "row skipped", "value treated as missing", ...
    kind: str = ""  # the kind of problem, for counts: "invalid SMILES", "not a number", ...

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column!r}: {self.problem} ({self.action})"


@dataclass
class MoleculeTable:
    """The molecules kept (standardised SMILES, one row per distinct molecule), their values
    (N, T) with NaN where missing, the file lines each row came from, and every issue."""

    source: str
    smiles: np.ndarray
    values: np.ndarray
    targets: tuple[str, ...]
    lines: list[tuple[int, ...]]
    changes: list[tuple[str, ...]]
    issues: list[RowIssue] = field(default_factory=list)
    n_read: int = 0

    def __len__(self) -> int:
        return len(self.smiles)

    def report(self) -> pd.DataFrame:
        """Per line: what happened to it (issues, then standardisation changes)."""
        rows = [{"line": i.line, "kind": i.kind, "column": i.column, "problem": i.problem,
                 "action": i.action} for i in self.issues]
        for lines, changes, smiles in zip(self.lines, self.changes, self.smiles, strict=True):
            if changes:
                rows.append({"line": lines[0], "kind": "standardised", "column": "",
                             "problem": "; ".join(changes), "action": f"standardised to {smiles}"})
        columns = ["line", "kind", "column", "problem", "action"]
        return pd.DataFrame(rows, columns=columns).sort_values(
            "line", kind="stable").reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """Counts only (no SMILES), for config.json and log lines."""
        by_kind: dict[str, int] = {}
        for issue in self.issues:
            by_kind[issue.kind] = by_kind.get(issue.kind, 0) + 1
        steps: dict[str, int] = {}
        for changes in self.changes:
            for change in changes:
                key = change.split(" (")[0]
                steps[key] = steps.get(key, 0) + 1
        return {"rows_read": self.n_read, "molecules": len(self), "issues": len(self.issues),
                "issues_by_kind": by_kind, "standardised": steps}


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV (optionally gzipped) as strings, so values are checked here, cell by cell."""
    if not Path(path).is_file():
        raise MissingDataError(f"molecule table {path} not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, OSError) as e:
        raise CorruptDataError(f"{path}: cannot parse as CSV ({e})") from e


def require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path | str,
                    what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: {what} column(s) {missing} not found; columns are "
                          f"{', '.join(map(str, frame.columns))}")


def _number(text: str) -> float | None:
    """A finite number, NaN for an empty cell, None for something that is not a number."""
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "n/a", "null", "none"):
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def read_molecule_table(path: Path | str, smiles_column: str, targets: Sequence[str], *,
                        labels: bool = False, require_all: bool = True,
                        tautomer: bool = False) -> MoleculeTable:
    """Read, check and standardise a table of molecules with measured values.

    `labels`: values must be 0 or 1 (classification). `require_all`: a row needs every target
    (a single-target task), else a row needs at least one (multitask: the others are missing).
    Rows are reported by line, never fatal: an invalid SMILES or a row without any usable value
    is skipped, a non-numeric value (or a label not 0/1) treated as missing. Duplicates (the same
    standardised molecule on several lines) become one row: regression values are averaged,
    classification labels kept when they agree and treated as missing when they conflict.
    """
    path = Path(path)
    frame = read_frame(path)
    require_columns(frame, [smiles_column], path, "SMILES")
    require_columns(frame, list(targets), path, "target")
    if not targets:
        raise ConfigError(f"{path}: name at least one target column")
    issues: list[RowIssue] = []
    kept: dict[str, int] = {}
    smiles_out: list[str] = []
    groups: list[list[np.ndarray]] = []
    lines: list[list[int]] = []
    changes: list[tuple[str, ...]] = []
    for position, row in enumerate(frame[[smiles_column, *targets]].itertuples(index=False)):
        line = position + 2
        std = standardise(str(row[0]), tautomer)
        if not std.valid:
            issues.append(RowIssue(line, smiles_column, str(std.error), "row skipped",
                                   "invalid SMILES"))
            continue
        values = np.full(len(targets), np.nan)
        flagged: list[RowIssue] = []
        for j, (name, cell) in enumerate(zip(targets, row[1:], strict=True)):
            value = _number(str(cell))
            if value is None:
                flagged.append(RowIssue(line, name, f"not a number: {str(cell)[:40]!r}",
                                        "value treated as missing", "not a number"))
            elif labels and not np.isnan(value) and value not in (0.0, 1.0):
                flagged.append(RowIssue(line, name, f"label {str(cell)[:40]!r} is not 0 or 1",
                                        "value treated as missing", "label not 0 or 1"))
            else:
                values[j] = value
        present = ~np.isnan(values)
        skipped = (require_all and not present.all()) or not present.any()
        for issue in flagged:
            issue.action = "row skipped" if skipped else issue.action
        issues += flagged
        if skipped:
            named = {i.column for i in flagged}
            empty = [t for t, p in zip(targets, present, strict=True) if not p and t not in named]
            if empty:
                issues.append(RowIssue(line, ", ".join(empty), "no value" if len(empty) > 1 or
                                       not require_all else "empty value", "row skipped",
                                       "missing value"))
            continue
        smiles = str(std.smiles)
        if smiles in kept:
            k = kept[smiles]
            groups[k].append(values)
            lines[k].append(line)
            continue
        kept[smiles] = len(smiles_out)
        smiles_out.append(smiles)
        groups.append([values])
        lines.append([line])
        changes.append(std.changes)
    merged = np.full((len(smiles_out), len(targets)), np.nan)
    for k, values in enumerate(groups):
        merged[k] = _merge(np.vstack(values), lines[k], targets, labels, issues)
    keep = ~np.isnan(merged).all(axis=1) if not require_all else ~np.isnan(merged).any(axis=1)
    for k in np.flatnonzero(~keep):
        issues.append(RowIssue(lines[k][0], ", ".join(targets), "no usable value left after "
                               "merging duplicates", f"molecule skipped (lines "
                               f"{', '.join(map(str, lines[k]))})", "no usable value"))
    table = MoleculeTable(
        source=str(path), smiles=np.array([s for s, k in zip(smiles_out, keep, strict=True) if k],
                                          dtype=object),
        values=merged[keep], targets=tuple(targets),
        lines=[tuple(v) for v, k in zip(lines, keep, strict=True) if k],
        changes=[c for c, k in zip(changes, keep, strict=True) if k],
        issues=sorted(issues, key=lambda i: i.line), n_read=len(frame))
    if not len(table):
        raise CorruptDataError(f"{path}: no usable molecule in {len(frame)} rows (first problems: "
                               f"{'; '.join(map(str, table.issues[:3]))})")
    return table


def _merge(values: np.ndarray, lines: list[int], targets: Sequence[str], labels: bool,
           issues: list[RowIssue]) -> np.ndarray:
    """One row of values from a molecule's duplicates (see `read_molecule_table`)."""
    if len(values) == 1:
        return values[0]
    out = np.full(values.shape[1], np.nan)
    where = ", ".join(map(str, lines))
    for j in range(values.shape[1]):
        column = values[:, j][~np.isnan(values[:, j])]
        if not len(column):
            continue
        if labels and len(np.unique(column)) > 1:
            issues.append(RowIssue(lines[0], targets[j], f"duplicate molecule with conflicting "
                                   f"labels {sorted({int(v) for v in column})} on lines {where}",
                                   "label treated as missing", "conflicting duplicates"))
            continue
        if not labels and np.ptp(column) > 0:
            issues.append(RowIssue(lines[0], targets[j], f"duplicate molecule measured "
                                   f"{len(column)} times ({', '.join(f'{v:g}' for v in column)}) "
                                   f"on lines {where}", "values averaged", "averaged duplicates"))
        out[j] = column.mean()
    return out


def log_issues(table: MoleculeTable, limit: int = 20) -> None:
    """Log each row issue (the first `limit`, then a count) and the standardisation counts."""
    for issue in table.issues[:limit]:
        log.warning("%s: %s", table.source, issue)
    if len(table.issues) > limit:
        log.warning("%s: %d more row issue(s); the run's data_report.csv lists them all",
                    table.source, len(table.issues) - limit)
    summary = table.summary()
    if summary["standardised"]:
        log.info("%s: standardised %s", table.source,
                 ", ".join(f"{k}: {n}" for k, n in summary["standardised"].items()))
