"""Drug response of cancer cell lines: the log IC50 of a drug on a cell line from the line's
genomic features and the drug's identity (GDSC, `gdsc_subset`: gdsctools' v17 release, 988 cell
lines x 265 drugs).

One row per measured (cell line, drug) pair. Its inputs are the line's features (tissue one-hot,
microsatellite instability, 270 driver-gene mutations, 407 recurrent copy-number gains and
losses, all 0/1) followed by one column holding the drug's index in the task's drug list (the
models embed it). The two tasks differ only in what the split keeps apart:

- `gdsc-drug-response`: held-out cell lines (every pair of a line in one part): how well the
  response of a known drug is predicted for a new tumour line.
- `gdsc-drug-response-new-drugs`: held-out drugs: how well the lines are ranked for a drug the
  model never saw. The shared data has no drug structures (only 11 of the 265 drugs are even
  named), so such a drug is known by nothing: the models fall back to what sensitises a line to
  drugs in general, and this task measures how far that goes.

Both are scored per drug (Pearson and Spearman over the drug's test lines, with bootstrap CIs;
`pipeline.drug_response`), the way drug-response models are compared, beside the pooled RMSE.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from iatros.data.omics import read_matrix, read_table_columns
from iatros.errors import CorruptDataError, MissingDataError
from iatros.kinds import Modality, TargetKind
from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import register_task

log = logging.getLogger("iatros")
FOLDER = "gdsc_subset"
IC50_FILE = "IC50_v17.csv.gz"
FEATURES_FILE = "genomic_features_v17.csv.gz"
DRUG_NAMES_FILE = "DRUG_DECODE.csv"
TISSUE_COLUMN = "TISSUE_FACTOR"
DRUG_COLUMN = re.compile(r"^Drug_(\d+)_IC50$")
MODELS = ("drug-response-net", "drug-mixed", "drug-enet")
SOURCE = ("Genomics of Drug Sensitivity in Cancer (Wellcome Sanger Institute), release v17 as "
          "packaged by gdsctools (CancerRxGene/gdsctools@770be39, data/IC50_v17.csv.gz and "
          "genomic_features_v17.csv.gz), in DATA_ROOT/gdsc_subset")


def _folder(root: Path) -> Path:
    for folder in (Path(root) / FOLDER, Path(root)):
        if (folder / IC50_FILE).is_file():
            return folder
    raise MissingDataError(f"{IC50_FILE} not found: expected {Path(root) / FOLDER / IC50_FILE} "
                           f"(gdsctools' GDSC v17 files {IC50_FILE} and {FEATURES_FILE}); pass "
                           f"the folder holding {FOLDER}/ as --data-root")


def _drug_ids(columns: list[str], path: Path) -> list[str]:
    """'Drug_1047_IC50' -> '1047'; any other column is an error naming it."""
    ids = []
    for column in columns:
        match = DRUG_COLUMN.match(column)
        if match is None:
            raise CorruptDataError(f"{path}: column {column!r} is not a drug column "
                                   f"(expected Drug_<id>_IC50)")
        ids.append(match.group(1))
    return ids


def drug_names(folder: Path, ids: list[str]) -> list[str]:
    """Each drug's name from DRUG_DECODE.csv where it is given, else 'drug <id>'."""
    path = folder / DRUG_NAMES_FILE
    named: dict[str, str] = {}
    if path.is_file():
        decode = pd.read_csv(path, dtype=str)
        for drug, name in zip(decode.get("DRUG_ID", []), decode.get("DRUG_NAME", []), strict=True):
            match = DRUG_COLUMN.match(str(drug))
            if match and isinstance(name, str) and name.strip():
                named[match.group(1)] = name.strip()
    return [named.get(d, f"drug {d}") for d in ids]


def cell_features(folder: Path) -> pd.DataFrame:
    """Cell lines x features (tissue one-hot, MSI, mutations, copy-number events), indexed by
    COSMIC id; a cell that is not a number is an error naming its line and column."""
    path = folder / FEATURES_FILE
    if not path.is_file():
        raise MissingDataError(f"{path} not found (the cell lines' genomic features)")
    values = read_matrix(path, sample_id="COSMIC_ID", skip=[TISSUE_COLUMN])
    tissue = read_table_columns(path, [TISSUE_COLUMN], sample_id="COSMIC_ID")[TISSUE_COLUMN]
    onehot = pd.get_dummies(tissue.str.strip().replace("", "unknown"), prefix="tissue",
                            dtype=np.float64)
    return pd.concat([onehot, values], axis=1)


def load_gdsc(root: Path) -> TaskData:
    """Every measured (cell line, drug) pair with the line's features and the drug's index."""
    folder = _folder(root)
    response = read_matrix(folder / IC50_FILE, sample_id="COSMIC_ID")
    drugs = _drug_ids(list(response.columns), folder / IC50_FILE)
    features = cell_features(folder)
    lines = response.index.intersection(features.index)
    no_features = response.index.difference(features.index)
    if not len(lines):
        raise CorruptDataError(f"{folder}: no cell line of {IC50_FILE} has genomic features in "
                               f"{FEATURES_FILE} (COSMIC ids do not match)")
    if len(no_features):
        log.info("gdsc: %d cell line(s) with responses but no genomic features left out",
                 len(no_features))
    ic50 = response.loc[lines].to_numpy(np.float64)
    line_index, drug_index = np.nonzero(~np.isnan(ic50))
    x = features.loc[lines].to_numpy(np.float32)
    inputs = np.empty((len(line_index), x.shape[1] + 1), dtype=np.float32)
    inputs[:, :-1] = x[line_index]
    inputs[:, -1] = drug_index
    tissue = features.loc[lines].filter(like="tissue_").idxmax(axis=1).str[len("tissue_"):]
    names = drug_names(folder, drugs)
    attributes = pd.DataFrame({"drug": np.asarray(names, dtype=object)[drug_index],
                               "drug_id": np.asarray(drugs, dtype=object)[drug_index],
                               "cell_line": lines.to_numpy()[line_index],
                               "tissue": tissue.to_numpy()[line_index]})
    log.info("gdsc: %d (cell line, drug) pairs: %d lines x %d drugs, %d features per line",
             len(line_index), len(lines), len(drugs), x.shape[1])
    return TaskData(
        inputs=inputs, targets=ic50[line_index, drug_index], patient_ids=attributes["cell_line"],
        attributes=attributes, feature_names=[*map(str, features.columns), "drug"],
        source=f"gdsc:{folder}",
        checks={"pairs": int(len(line_index)), "cell_lines": int(len(lines)),
                "drugs": len(drugs), "lines_without_features": int(len(no_features))},
    )


def _by_drug(root: Path) -> TaskData:
    """The pairs grouped by drug, so that the split keeps each drug in one part."""
    data = load_gdsc(root)
    data.patient_ids = data.attributes["drug_id"].to_numpy().astype(str)
    return data


GDSC_DRUG_RESPONSE = register_task(Task(
    name="gdsc-drug-response",
    description="log IC50 of a drug on a cancer cell line from the line's mutations, copy-number "
                "events, MSI and tissue and the drug's identity (GDSC v17); held-out cell lines",
    modality=Modality.DRUG_RESPONSE,
    target=TargetKind.REGRESSION,
    loader=load_gdsc,
    primary_metric="rmse",
    default_model="drug-mixed",  # best median per-drug Spearman on the validation lines
    models=MODELS,
    split_by="cell line",
    split_fractions=(0.7, 0.15, 0.15),
    source=SOURCE,
    intended_use=(
        "Research: ranking cancer cell lines by sensitivity to a drug from their genomic "
        "features. Not a treatment recommendation: cell-line IC50 is not patient response."),
    limitations=(
        "Cell lines, not tumours: no microenvironment, immune system or pharmacokinetics.",
        "Binary genomic features only (mutations and copy-number events of the GDSC "
        "cancer functional events); no expression or methylation.",
        "Drugs are known by identity only: the shared data has no structures, so a new drug "
        "is predicted from general sensitivity (see gdsc-drug-response-new-drugs).",
        "IC50 values extrapolated beyond the screened concentration range are kept as "
        "released by GDSC.",
    ),
    extra={"correlate_by": "drug"},
))

GDSC_NEW_DRUGS = register_task(replace(
    GDSC_DRUG_RESPONSE,
    name="gdsc-drug-response-new-drugs",
    description="log IC50 on GDSC v17 as gdsc-drug-response, with held-out drugs: every pair of "
                "a test drug is unseen, so lines are ranked by general sensitivity",
    loader=_by_drug,
    split_by="drug",
    default_model="drug-response-net",  # its learned unknown drug ranks a new drug's lines
))
