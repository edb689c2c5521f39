"""Multi-omics tasks: `tcga-brca-subtype` (PAM50 subtype of TCGA breast tumours from mRNA, miRNA
and protein, mixOmics' `breast.TCGA` with its own train/test split) and `omics:PATH[,PATH...]`
for a user's own matrices (`iatros train omics:mrna.csv,protein.parquet --target subtype`).

Each matrix is samples x features (`data.omics.read_matrix`); the omics are joined by sample id
(`data.omics.join_omics`) into one matrix whose block layout every omics model receives as its
`blocks` parameter. An omic a sample lacks is an all-missing block (the fusion network masks it);
the run's data_report.csv lists which ids are present in one omic and not another.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.omics import (
    OmicsTable,
    join_omics,
    matrix_header,
    read_matrix,
    read_table_columns,
)
from iatros.data.sources.csv_table import resolve_path
from iatros.errors import ConfigError, CorruptDataError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.outcomes import (
    PRIMARY_METRIC,
    class_labels,
    encode_target,
    infer_kind,
    survival_targets,
)
from iatros.tasks.registry import register_family, register_task

log = logging.getLogger("iatros")
MODELS = ("omics-fusion", "omics-enet", "omics-gbm")
OMICS_TASK_KINDS = (TargetKind.BINARY, TargetKind.MULTICLASS, TargetKind.REGRESSION)
TCGA_FOLDER = "tcga_brca_mixomics"
TCGA_OMICS = {"mrna": 200, "mirna": 184, "protein": 142}
TCGA_SUBTYPES = ("Basal", "Her2", "LumA")
TCGA_SOURCE = ("TCGA breast invasive carcinoma, mixOmics `breast.TCGA` (mixOmicsTeam/mixOmics@"
               "d732983, data/breast.TCGA.rda; GPL >= 2, TCGA open-access tier), as CSV in "
               "DATA_ROOT/tcga_brca_mixomics")


def _log_table(source: str, table: OmicsTable) -> None:
    summary = table.summary()
    parts = ", ".join(f"{name} {v['samples']}/{summary['samples']} samples x {v['features']}"
                      for name, v in summary["omics"].items())
    log.info("%s: %s", source, parts)
    if table.issues:
        log.info("%s: %d id(s) missing from an omic or dropped; the run's data_report.csv lists "
                 "them", source, len(table.issues))


def _tcga_folder(root: Path) -> Path:
    for folder in (Path(root) / TCGA_FOLDER, Path(root)):
        if (folder / "data.train_subtype.csv").is_file():
            return folder
    raise MissingDataError(f"data.train_subtype.csv not found: expected {Path(root) / TCGA_FOLDER}"
                           f" (mixOmics breast.TCGA as CSV: data.{{train,test}}_{{mrna,mirna,"
                           f"protein,subtype}}.csv[.gz]); pass the folder holding "
                           f"{TCGA_FOLDER}/ as --data-root")


def _tcga_labels(folder: Path) -> pd.DataFrame:
    """sample, subtype, part ('train' / 'test'); a sample in both parts is an error."""
    frames = []
    for part in ("train", "test"):
        path = folder / f"data.{part}_subtype.csv"
        labels = read_table_columns(path, ["subtype"])
        frames.append(pd.DataFrame({"sample": labels.index, "subtype": labels["subtype"].to_numpy(),
                                    "part": part, "line": np.arange(len(labels)) + 2,
                                    "file": str(path)}))
    table = pd.concat(frames, ignore_index=True)
    twice = table["sample"][table["sample"].duplicated()].unique()
    if len(twice):
        raise CorruptDataError(f"{folder}: sample(s) {list(twice[:5])} are in both the train and "
                               f"the test labels")
    unknown = table[~table["subtype"].isin(TCGA_SUBTYPES)]
    if len(unknown):
        row = unknown.iloc[0]
        raise CorruptDataError(f"{row['file']}: line {row['line']}, sample {row['sample']!r}: "
                               f"subtype {row['subtype']!r} is not one of "
                               f"{', '.join(TCGA_SUBTYPES)}")
    return table


def _tcga_matrix(folder: Path, omic: str) -> pd.DataFrame:
    """The omic's train and test matrices stacked (the test part may be absent: the mixOmics
    test set has no protein)."""
    parts = []
    for part in ("train", "test"):
        found = [folder / f"data.{part}_{omic}{s}" for s in (".csv.gz", ".csv", ".parquet")]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            if part == "train":
                raise MissingDataError(f"{found[0]} not found (the {omic} training matrix)")
            continue
        parts.append(read_matrix(path))
    if len(parts) == 2 and list(parts[0].columns) != list(parts[1].columns):
        raise CorruptDataError(f"{folder}: the train and test {omic} matrices have different "
                               f"feature columns")
    return pd.concat(parts)


def _load_tcga(root: Path, omics: tuple[str, ...] = tuple(TCGA_OMICS)) -> TaskData:
    folder = _tcga_folder(root)
    labels = _tcga_labels(folder)
    matrices = {omic: _tcga_matrix(folder, omic) for omic in omics}
    table = join_omics(matrices, labels["sample"].tolist(),
                       widths={omic: TCGA_OMICS[omic] for omic in omics})
    _log_table(f"tcga-brca-subtype ({folder})", table)
    labels = labels.set_index("sample").loc[table.samples]
    lookup = {c: i for i, c in enumerate(TCGA_SUBTYPES)}
    return TaskData(
        inputs=table.values, targets=labels["subtype"].map(lookup).to_numpy(np.int64),
        patient_ids=table.samples, attributes=pd.DataFrame(index=range(len(table.samples))),
        feature_names=table.feature_names, split=labels["part"].to_numpy(),
        source=f"tcga_brca_mixomics:{folder}", row_report=table.report(),
        checks=table.summary(),
    )


TCGA_BRCA_SUBTYPE = register_task(Task(
    name="tcga-brca-subtype",
    description="PAM50 subtype (Basal, Her2, LumA) of TCGA breast tumours from mRNA, miRNA and "
                "protein expression; the test samples have no protein",
    modality=Modality.OMICS,
    target=TargetKind.MULTICLASS,
    loader=_load_tcga,
    classes=TCGA_SUBTYPES,
    primary_metric="auroc",
    default_model="omics-fusion",
    models=MODELS,
    split_by="sample",
    split_fractions=(0.8, 0.2, 0.0),  # the dataset's own test set; validation is 20% of train
    source=TCGA_SOURCE,
    intended_use=(
        "Research and teaching: multi-omics fusion and its behaviour when an omic is missing. "
        "Not a diagnostic test; PAM50 subtyping in practice uses a validated assay."),
    limitations=(
        "150 training and 70 test tumours from one consortium; LumB and normal-like tumours "
        "were excluded by the dataset's curators, so the three classes are easier to separate "
        "than in a clinic.",
        "The mixOmics curators pre-filtered features (200 mRNA, 184 miRNA, 142 proteins) on "
        "all samples, which may favour these features on the test set.",
        "The test samples have no protein measurements: every test prediction is made from "
        "mRNA and miRNA only (protein masked).",
        "No demographic attributes are available, so no subgroup audit is possible.",
    ),
    model_params={"blocks": [[name, width] for name, width in TCGA_OMICS.items()]},
))


def tcga_subtype_task(omics: tuple[str, ...]) -> Task:
    """`tcga-brca-subtype` from a subset of its omics (e.g. ("mrna",)): for comparing single
    omics with their fusion on the same split."""
    unknown = [o for o in omics if o not in TCGA_OMICS]
    if unknown or not omics:
        raise ConfigError(f"omics must be a non-empty subset of {', '.join(TCGA_OMICS)}, not "
                          f"{list(omics)}")
    chosen = tuple(o for o in TCGA_OMICS if o in omics)
    return replace(TCGA_BRCA_SUBTYPE, name=f"tcga-brca-subtype[{'+'.join(chosen)}]",
                   loader=partial(_load_tcga, omics=chosen),
                   model_params={"blocks": [[o, TCGA_OMICS[o]] for o in chosen]})


# --------------------------------------------------------------------------------------------
# GSE7390: expression and clinical variables as two inputs
# --------------------------------------------------------------------------------------------

GSE7390_CLINICAL = ("age", "size", "er", "grade")


def _load_gse7390(_root: Path) -> TaskData:
    """scikit-survival's GSE7390 (198 patients): the 76 genes as one omic, age, tumour size,
    ER status and grade (one-hot) as the other; time to distant metastasis."""
    import sksurv.datasets as datasets

    from iatros.data.sources.csv_table import one_hot_text_columns

    frame, outcome = datasets.load_breast_cancer()
    genes = frame.drop(columns=list(GSE7390_CLINICAL)).astype(np.float64)
    clinical = one_hot_text_columns(frame[list(GSE7390_CLINICAL)]).astype(np.float64)
    ids = np.array([f"breast_cancer-{i:05d}" for i in range(len(frame))])  # as survival-gse7390
    table = join_omics({"expression": genes.set_axis(ids), "clinical": clinical.set_axis(ids)},
                       list(ids))
    return TaskData(
        inputs=table.values, targets=survival_targets(outcome["t.tdm"], outcome["e.tdm"],
                                                      "sksurv:load_breast_cancer"),
        patient_ids=table.samples, attributes=pd.DataFrame(index=range(len(ids))),
        feature_names=table.feature_names, source="sksurv:load_breast_cancer (GSE7390)",
        checks=table.summary(),
    )


GSE7390_OMICS = register_task(Task(
    name="survival-gse7390-omics",
    description="GSE7390 breast cancer, 198 patients: time to distant metastasis from 76 genes "
                "and clinical variables (age, size, ER, grade) as two inputs, fused",
    modality=Modality.OMICS,
    target=TargetKind.SURVIVAL,
    loader=_load_gse7390,
    primary_metric="c_index",
    default_model="omics-fusion",
    models=("omics-fusion",),
    split_by="patient",
    source="scikit-survival packaged dataset (sksurv.datasets.load_breast_cancer; GEO GSE7390, "
           "Desmedt et al., Clin Cancer Res 2007)",
    intended_use="Research and teaching: fusing expression with clinical variables for "
                 "prognosis, compared with the flat models of survival-gse7390.",
    limitations=(
        "198 patients from one study (node-negative, untreated); test C-index CIs are wide.",
        "The 76 genes are the published prognostic signature's, selected on these patients' "
        "cohort, which may favour them.",
    ),
    model_params={"blocks": [["expression", 76], ["clinical", 8]]},  # checked by the tests
))


# --------------------------------------------------------------------------------------------
# omics:PATH[,PATH...]
# --------------------------------------------------------------------------------------------


def _omic_names(paths: list[Path]) -> list[str]:
    """Each file's omic name: its name before the first dot, made unique."""
    names: list[str] = []
    for path in paths:
        base = path.name.split(".")[0] or "omic"
        name, k = base, 2
        while name in names:
            name, k = f"{base}{k}", k + 1
        names.append(name)
    return names


def _layout(paths: list[Path], options: dict[str, Any]) -> tuple[list[tuple[str, int]], Path]:
    """The omics blocks (name, features) and the file holding the target column."""
    target, id_column = options["target"], options.get("patient_id")
    drop = set(options.get("drop") or ())
    labels = Path(options["labels"]) if options.get("labels") else None
    blocks, holder = [], labels
    for name, path in zip(_omic_names(paths), paths, strict=True):
        columns, annotations = matrix_header(path)
        if not columns:
            raise CorruptDataError(f"{path}: no columns")
        sample = id_column if id_column else columns[0]
        if sample not in columns:
            raise ConfigError(f"{path}: sample-id column {sample!r} not found")
        if target in columns and holder is None:
            holder = path
        features = [c for c in columns if c not in {sample, target} | drop | annotations]
        if features:
            blocks.append((name, len(features)))
    if holder is None:
        raise ConfigError(f"target column {target!r} is in none of {', '.join(map(str, paths))}; "
                          f"name the file holding it with --labels or check --target")
    if not blocks:
        raise ConfigError(f"omics:{','.join(map(str, paths))}: no feature columns besides the "
                          f"sample id and the target")
    return blocks, holder


def _paths(argument: str, root: Path) -> list[Path]:
    parts = [p.strip() for p in argument.split(",") if p.strip()]
    if not parts:
        raise ConfigError("omics:PATH[,PATH...] needs at least one matrix file")
    return [resolve_path(p, root) for p in parts]


def _load_user(root: Path, *, argument: str, options: dict[str, Any]) -> TaskData:
    paths = _paths(argument, root)
    target, id_column = options["target"], options.get("patient_id")
    skip = {target, *(options.get("drop") or ())}
    holder = Path(options["holder"])
    labels = read_table_columns(holder, [target], sample_id=id_column)
    labels = labels[labels[target].notna() & (labels[target].astype(str).str.strip() != "")]
    matrices = {}
    for name, path in zip(_omic_names(paths), paths, strict=True):
        matrix = read_matrix(path, sample_id=id_column, skip=tuple(skip))
        if matrix.shape[1]:
            matrices[name] = matrix
    widths = {name: width for name, width in options["blocks"]}
    table = join_omics(matrices, labels.index.tolist(), widths=widths)
    _log_table(f"omics:{argument}", table)
    values = _typed(labels.loc[table.samples, target])
    values.index = pd.Index(np.arange(len(values)))
    kind = TargetKind(options["kind"])
    return TaskData(
        inputs=table.values, targets=encode_target(values, kind, tuple(options["classes"]), holder),
        patient_ids=table.samples, attributes=pd.DataFrame(index=range(len(table.samples))),
        feature_names=table.feature_names, source=f"omics:{argument}",
        row_report=table.report(), checks=table.summary(),
    )


def omics_task(argument: str, options: dict[str, Any]) -> Task:
    """The task for `omics:PATH[,PATH...]`: options target (required), labels (the file holding
    the target, else the matrix that has it), patient_id (the sample-id column, else each file's
    first), kind, positive, drop."""
    resolved = dict(options)
    if not resolved.get("target"):
        raise ConfigError(f"omics:{argument} needs the outcome column: add --target COLUMN")
    root = Path(resolved.pop("data_root", "."))
    paths = _paths(argument, root)
    if resolved.get("labels"):
        resolved["labels"] = str(resolve_path(str(resolved["labels"]), root))
    blocks, holder = _layout(paths, resolved)
    resolved.update(blocks=[[n, w] for n, w in blocks], holder=str(holder))
    if "kind" not in resolved or "classes" not in resolved:
        values = read_table_columns(holder, [resolved["target"]],
                                    sample_id=resolved.get("patient_id"))[resolved["target"]]
        values = values[values.astype(str).str.strip() != ""].replace("", np.nan).dropna()
        where = f"{holder}, column {resolved['target']!r}"
        kind = TargetKind(resolved["kind"]) if resolved.get("kind") else infer_kind(
            _typed(values), where)
        if kind not in OMICS_TASK_KINDS:
            raise ConfigError(f"omics tasks support kinds {[k.value for k in OMICS_TASK_KINDS]}, "
                              f"not {kind.value}")
        resolved["kind"] = kind.value
        resolved["classes"] = list(class_labels(_typed(values), kind, resolved.get("positive"),
                                                where))
    kind = TargetKind(resolved["kind"])
    return Task(
        name=f"omics:{argument}",
        description=f"{resolved['target']} from {', '.join(n for n, _ in blocks)}",
        modality=Modality.OMICS, target=kind,
        loader=partial(_load_user, argument=argument, options=resolved),
        classes=tuple(resolved["classes"]), primary_metric=PRIMARY_METRIC[kind],
        default_model="omics-fusion", models=MODELS, split_by="sample",
        source=f"user matrices {argument}",
        intended_use="Defined by the user who supplied the matrices.",
        limitations=("User-supplied matrices: their provenance, normalisation and cohort "
                     "selection are not checked by iatros.",),
        model_params={"blocks": [[n, w] for n, w in blocks]},
        extra={"options": resolved},
    )


def _typed(values: pd.Series) -> pd.Series:
    """Text values as numbers when every one is a number, else as they are."""
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().all() else values


register_family("omics", omics_task)
