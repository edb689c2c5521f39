"""Molecular property, toxicity and side-effect tasks: the MoleculeNet sets in
`DATA_ROOT/moleculenet` (ESOL, FreeSolv, Lipophilicity, BBBP, BACE, HIV, Tox21, ToxCast, SIDER,
ClinTox) and `molecules:PATH` for a user's assay table
(`iatros train molecules:assay.csv --smiles SMILES --target pIC50`).

Each SMILES is standardised (`data.formats.smiles`); problems are reported per line of the file
and the rest of the file is used (the run's data_report.csv lists every line). Several 0/1
targets make one multilabel task whose missing labels are left out of the loss and the metrics.

Splits (`split` option): `scaffold` (default: Bemis-Murcko scaffolds, balanced and seeded, no
scaffold in two parts), `random` (by molecule) or `stratified` (by molecule, stratified on the
label; regression targets on their quintile). The named tasks use the scaffold split;
`moleculenet:NAME --split random` is the same set with another split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.formats.smiles import (
    MoleculeTable,
    log_issues,
    murcko_scaffold,
    read_frame,
    read_molecule_table,
    require_columns,
)
from iatros.data.sources.csv_table import resolve_path
from iatros.data.splits import Split, balanced_group_split, group_split
from iatros.errors import ConfigError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.molecule_labels import SIDER, TOXCAST
from iatros.tasks.outcomes import PRIMARY_METRIC, infer_kind
from iatros.tasks.registry import register_family, register_task

SPLITS = ("scaffold", "random", "stratified")
FRACTIONS = (0.8, 0.1, 0.1)
MODELS = ("dmpnn", "gin", "ecfp-mlp", "ecfp-rf", "ecfp-gbm")
MOLECULE_KINDS = (TargetKind.BINARY, TargetKind.REGRESSION, TargetKind.MULTILABEL)
ACYCLIC = "(acyclic)"  # the scaffold group of molecules without rings
FOLDER = "moleculenet"
MOLECULENET_SOURCE = ("MoleculeNet (Wu et al. 2018) as distributed with chemprop "
                      "(chemprop/chemprop@a68ade2, data/)")


@dataclass(frozen=True)
class MoleculeSet:
    """One MoleculeNet file: its SMILES column, target columns, kind."""

    file: str
    smiles: str
    kind: TargetKind
    description: str
    targets: tuple[str, ...]
    classes: tuple[str, ...] = ()
    units: str = ""
    licence: str = ""


MOLECULENET: dict[str, MoleculeSet] = {
    "esol": MoleculeSet("delaney.csv", "smiles", TargetKind.REGRESSION,
                        "Aqueous solubility, log10(mol/L) (ESOL, Delaney 2004; the file's column "
                        "`logp` holds log solubility)", ("logp",), units="log10(mol/L)"),
    "freesolv": MoleculeSet("freesolv.csv", "smiles", TargetKind.REGRESSION,
                            "Hydration free energy in water, kcal/mol (FreeSolv)", ("freesolv",),
                            units="kcal/mol"),
    "lipophilicity": MoleculeSet("lipo.csv", "smiles", TargetKind.REGRESSION,
                                 "Octanol/water distribution coefficient, logD at pH 7.4 "
                                 "(ChEMBL lipophilicity)", ("lipo",), units="logD",
                                 licence="ChEMBL data, CC BY-SA 3.0"),
    "bbbp": MoleculeSet("bbbp.csv", "smiles", TargetKind.BINARY,
                        "Blood-brain barrier penetration (BBBP)", ("p_np",),
                        ("non-penetrating", "penetrating")),
    "bace": MoleculeSet("bace.csv", "mol", TargetKind.BINARY,
                        "Inhibition of human beta-secretase 1 (BACE-1), binary", ("Class",),
                        ("inactive", "BACE-1 inhibitor")),
    "hiv": MoleculeSet("hiv.csv.gz", "smiles", TargetKind.BINARY,
                       "Inhibition of HIV replication (NCI DTP AIDS antiviral screen; confirmed "
                       "active or moderately active vs inactive)", ("HIV_active",),
                       ("inactive", "active")),
    "tox21": MoleculeSet("tox21.csv", "smiles", TargetKind.MULTILABEL,
                         "Toxicity on 12 Tox21 assays (nuclear receptor and stress response "
                         "pathways), one label per assay, missing where not tested",
                         ("NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD",
                          "NR-PPAR-gamma", "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53")),
    "toxcast": MoleculeSet("toxcast.csv.gz", "smiles", TargetKind.MULTILABEL,
                           "Toxicity on 617 ToxCast in-vitro assays, missing where not tested",
                           TOXCAST),
    "sider": MoleculeSet("sider.csv", "smiles", TargetKind.MULTILABEL,
                         "Marketed drugs' side effects on 27 organ classes (SIDER, MedDRA "
                         "system organ classes)", SIDER,
                         licence="SIDER, CC BY-NC-SA 4.0 (non-commercial)"),
    "clintox": MoleculeSet("clintox.csv", "smiles", TargetKind.MULTILABEL,
                           "FDA approval and failure in clinical trials for toxicity (ClinTox)",
                           ("FDA_APPROVED", "CT_TOX")),
}


def _moleculenet_path(root: Path, entry: MoleculeSet) -> Path:
    for candidate in (Path(root) / FOLDER / entry.file, Path(root) / entry.file):
        if candidate.is_file():
            return candidate
    raise MissingDataError(f"{entry.file} not found: expected {Path(root) / FOLDER / entry.file} "
                           f"(MoleculeNet files as in chemprop's repository, data/{entry.file}); "
                           f"pass the folder holding moleculenet/ as --data-root")


def scaffold_group(smiles: str) -> str:
    return murcko_scaffold(smiles) or ACYCLIC


def _groups(smiles: np.ndarray, split: str) -> np.ndarray:
    """What a split keeps together: the scaffold (scaffold split), else the molecule."""
    if split == "scaffold":
        return np.array([scaffold_group(s) for s in smiles], dtype=object)
    return np.asarray(smiles, dtype=object)


def _targets(table: MoleculeTable, kind: TargetKind) -> np.ndarray:
    """Values as the kind's targets: 0/1 integers (binary), numbers, or a 0/1 matrix with NaN
    where a label is missing (multilabel)."""
    if kind.label_matrix:
        return table.values.astype(np.float64)
    column = table.values[:, 0]
    return column.astype(np.int64) if kind.is_classification else column.astype(np.float64)


def load_molecules(path: Path, smiles: str, targets: tuple[str, ...], kind: TargetKind,
                   split: str, tautomer: bool = False) -> TaskData:
    """A molecule table as TaskData: standardised SMILES as inputs, the split's groups as ids,
    each molecule's SMILES as an attribute (so predictions.csv names it), the row report."""
    table = read_molecule_table(path, smiles, targets, labels=kind.is_classification,
                                require_all=not kind.label_matrix, tautomer=tautomer)
    log_issues(table)
    return TaskData(
        inputs=table.smiles, targets=_targets(table, kind),
        patient_ids=_groups(table.smiles, split),
        attributes=pd.DataFrame({"smiles": table.smiles}),
        source=f"molecules:{path}", row_report=table.report(),
        checks={**table.summary(), "split": split},
    )


def _strata(targets: np.ndarray) -> np.ndarray:
    """Binary: the label; multilabel: any positive label; regression: the quintile."""
    y = np.asarray(targets, dtype=float)
    if y.ndim == 2:
        return (np.nan_to_num(y) > 0).any(axis=1).astype(int)
    if len(np.unique(y)) <= 2:
        return y.astype(int)
    edges = np.quantile(y, [0.2, 0.4, 0.6, 0.8])
    return np.searchsorted(edges, y)


def splitter(split: str, fractions: tuple[float, float, float] = FRACTIONS) -> Any:
    """The task's split rule: balanced scaffold groups, or molecules at random (stratified)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")

    def scaffold(data: TaskData, seed: int) -> Split:
        return balanced_group_split(data.patient_ids, fractions=fractions, seed=seed)

    def random(data: TaskData, seed: int) -> Split:
        return group_split(data.patient_ids, fractions=fractions, seed=seed)

    def stratified(data: TaskData, seed: int) -> Split:
        return group_split(data.patient_ids, strata=_strata(data.targets), fractions=fractions,
                           seed=seed)

    return {"scaffold": scaffold, "random": random, "stratified": stratified}[split]


LIMITATIONS = (
    "Predictions hold for molecules like the training set: check each prediction's "
    "applicability flag (nearest-neighbour Tanimoto similarity to the training molecules) "
    "before trusting it.",
    "A scaffold split tests new chemical series; a random split is optimistic, since close "
    "analogues of test molecules are in the training set.",
    "SMILES were standardised (largest fragment, normalised groups, neutral charges): salts and "
    "charge states are not modelled.",
)
INTENDED_USE = ("Research: prioritising molecules for testing (virtual screening) and "
                "benchmarking. Not a substitute for experimental measurement or a regulatory "
                "toxicity assessment.")


def _task(name: str, description: str, kind: TargetKind, loader: Any, classes: tuple[str, ...],
          split: str, source: str, limitations: tuple[str, ...],
          options: dict[str, Any] | None) -> Task:
    return Task(
        name=name, description=description, modality=Modality.MOLECULE, target=kind,
        loader=loader, classes=classes, primary_metric=PRIMARY_METRIC[kind],
        default_model="dmpnn", models=MODELS, split_by="scaffold" if split == "scaffold"
        else "molecule", split_fractions=FRACTIONS, splitter=splitter(split), source=source,
        intended_use=INTENDED_USE, limitations=limitations, extra={"options": options},
    )


def moleculenet_task(name: str, split: str = "scaffold", options: dict[str, Any] | None = None,
                     task_name: str | None = None) -> Task:
    """The MoleculeNet set `name` with the given split (`task_name`: the name it goes by)."""
    if name not in MOLECULENET:
        raise ConfigError(f"no MoleculeNet set {name!r}; known: {', '.join(MOLECULENET)}")
    entry = MOLECULENET[name]
    tautomer = bool((options or {}).get("tautomer", False))

    def load(root: Path) -> TaskData:
        path = _moleculenet_path(root, entry)
        return load_molecules(path, entry.smiles, entry.targets, entry.kind, split, tautomer)

    classes = entry.targets if entry.kind.label_matrix else entry.classes
    limitations = LIMITATIONS + ((f"Data licence: {entry.licence}.",) if entry.licence else ())
    return _task(task_name or name, entry.description, entry.kind, load, classes, split,
                 MOLECULENET_SOURCE, limitations, options)


for _name in MOLECULENET:
    register_task(moleculenet_task(_name))


def _options(options: dict[str, Any]) -> dict[str, Any]:
    split = options.get("split") or "scaffold"
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    out = {"split": split}
    if options.get("tautomer"):
        out["tautomer"] = True
    return out


def moleculenet_family(argument: str, options: dict[str, Any]) -> Task:
    """`moleculenet:NAME` with options: split (scaffold, random, stratified), tautomer."""
    resolved = _options(options)
    return moleculenet_task(argument, resolved["split"], resolved, task_name=f"moleculenet:{argument}")


def molecules_family(argument: str, options: dict[str, Any]) -> Task:
    """`molecules:PATH`: a user's table; options smiles (column, default "smiles"), target or
    targets (columns), kind (binary, regression, multilabel; inferred), split, tautomer."""
    resolved = {**options, **_options(options)}
    resolved.pop("data_root", None)
    targets = tuple(resolved.get("targets") or ([resolved["target"]] if resolved.get("target")
                                                else []))
    if not targets:
        raise ConfigError(f"molecules:{argument} needs the measured column(s): add --target COLUMN "
                          f"(repeat it for several assays)")
    smiles = str(resolved.get("smiles") or "smiles")
    path = resolve_path(argument, Path(options.get("data_root", ".")))
    if "kind" not in resolved or "classes" not in resolved:
        frame = read_frame(path)
        require_columns(frame, [smiles], path, "SMILES")
        require_columns(frame, list(targets), path, "target")
        kind = TargetKind(resolved["kind"]) if resolved.get("kind") else _infer(frame, targets, path)
        resolved["kind"] = kind.value
        resolved["classes"] = list(targets if kind.label_matrix else
                                   (f"{targets[0]}=0", f"{targets[0]}=1")
                                   if kind.is_classification else ())
    kind = TargetKind(resolved["kind"])
    if kind not in MOLECULE_KINDS:
        raise ConfigError(f"molecules:{argument}: kind {kind.value} is not supported; use binary, "
                          f"regression, or several 0/1 targets (multilabel)")
    if len(targets) > 1 and not kind.label_matrix:
        raise ConfigError(f"molecules:{argument}: several targets make one multilabel task of 0/1 "
                          f"labels; {kind.value} targets need one run per column")
    resolved.update(smiles=smiles, targets=list(targets))
    resolved.pop("target", None)
    loader = partial(_load_user, argument=argument, smiles=smiles, targets=targets, kind=kind,
                     split=resolved["split"], tautomer=bool(resolved.get("tautomer")))
    description = (f"{', '.join(targets)} of the molecules in {Path(argument).name}")
    limitations = LIMITATIONS + ("A user-supplied table: its provenance and assay conditions are "
                                 "not checked by iatros.",)
    return _task(f"molecules:{argument}", description, kind, loader,
                 tuple(resolved["classes"]), resolved["split"], f"user table {argument}",
                 limitations, resolved)


def _infer(frame: pd.DataFrame, targets: tuple[str, ...], path: Path) -> TargetKind:
    """Several columns: multilabel; one: binary for two values, else regression."""
    if len(targets) > 1:
        return TargetKind.MULTILABEL
    values = pd.to_numeric(frame[targets[0]].replace("", np.nan), errors="coerce")
    kind = infer_kind(values, f"{path}, column {targets[0]!r}")
    return kind if kind in MOLECULE_KINDS else TargetKind.REGRESSION


def _load_user(root: Path, *, argument: str, smiles: str, targets: tuple[str, ...],
               kind: TargetKind, split: str, tautomer: bool) -> TaskData:
    return load_molecules(resolve_path(argument, root), smiles, targets, kind, split, tautomer)


register_family("moleculenet", moleculenet_family)
register_family("molecules", molecules_family)
