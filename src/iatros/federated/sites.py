"""The sites of a federated run: which rows each hospital or unit holds, a seeded Dirichlet
split for tasks without a site column, and whether a site has enough patients to take part."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iatros.data.splits import Split
from iatros.errors import ConfigError
from iatros.kinds import TargetKind
from iatros.tasks import TaskData

DIRICHLET = "dirichlet"
MIN_SITE_PATIENTS = 20


@dataclass(frozen=True)
class SiteRows:
    """Row indices (into the task's data) of one site's training, validation and test patients."""

    label: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def n(self) -> int:
        return int(len(self.train) + len(self.val) + len(self.test))


def site_labels(data: TaskData, sites: str, seed: int) -> np.ndarray:
    """One site label per row: a column of the task's attributes (`icu_type`, `site`, ...), or
    `dirichlet:K[:ALPHA]`, K sites drawn by a seeded Dirichlet split of each outcome's patients."""
    if sites.startswith(DIRICHLET):
        parts = sites.split(":")
        try:
            k = int(parts[1])
            alpha = float(parts[2]) if len(parts) > 2 else 0.5
        except (IndexError, ValueError):
            raise ConfigError(f"--sites {sites!r}: expected dirichlet:K or dirichlet:K:ALPHA, "
                              f"e.g. dirichlet:4:0.5") from None
        if k < 2 or alpha <= 0:
            raise ConfigError(f"--sites {sites!r}: K must be >= 2 and ALPHA > 0")
        return dirichlet_sites(data.targets, data.patient_ids, k, alpha, seed)
    columns = [c for c in data.attributes.columns if c != "stay_id"]
    if sites not in data.attributes.columns or sites == "stay_id":
        raise ConfigError(f"--sites {sites!r} is not a column of this task's records; columns that "
                          f"can name sites: {', '.join(columns) or 'none'}, or dirichlet:K[:ALPHA]")
    return data.attributes[sites].astype(str).to_numpy()


def dirichlet_sites(targets: np.ndarray, patient_ids: np.ndarray, k: int, alpha: float,
                    seed: int) -> np.ndarray:
    """Label skew as in the federated-learning literature: the patients of each outcome class
    are shared among K sites in proportions drawn from Dirichlet(ALPHA); a patient's rows stay
    at one site. Smaller ALPHA, more different sites."""
    # a stream of its own: the split draws from default_rng(seed), and sharing it would put the
    # first site's patients in training and the last site's in test
    rng = np.random.default_rng([seed, 0x5173])
    patients, first = np.unique(patient_ids.astype(str), return_index=True)
    y = np.asarray(targets)
    strata = y[first] if y.ndim == 1 else y[first].argmax(axis=1) if y.ndim == 2 else None
    if strata is None or not np.issubdtype(np.asarray(strata).dtype, np.integer):
        strata = np.zeros(len(patients), dtype=np.int64)  # regression: one stratum
    site_of = np.empty(len(patients), dtype=object)
    for c in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == c))
        cuts = (np.cumsum(rng.dirichlet(np.full(k, alpha))) * len(members)).astype(int)[:-1]
        for s, chunk in enumerate(np.split(members, cuts)):
            site_of[chunk] = f"site-{s + 1}"
    lookup = dict(zip(patients, site_of, strict=True))
    return np.array([lookup[p] for p in patient_ids.astype(str)], dtype=object).astype(str)


def site_rows(labels: np.ndarray, split: Split) -> list[SiteRows]:
    """Each site's share of the run's split, sites in sorted order."""
    out = []
    for label in sorted(np.unique(labels.astype(str))):
        mine = labels == label
        out.append(SiteRows(str(label), *(part[mine[part]] for part in
                                          (split.train, split.val, split.test))))
    return out


def site_problems(site: SiteRows, targets: np.ndarray, patient_ids: np.ndarray,
                  kind: TargetKind, min_patients: int = MIN_SITE_PATIENTS) -> list[str]:
    """Why a site cannot train or be scored: too few training patients, one outcome class in
    its training rows, no validation or test patients. Empty when it can take part."""
    problems = []
    n_train = len(np.unique(patient_ids[site.train]))
    if n_train < min_patients:
        problems.append(f"{n_train} training patients (at least {min_patients} needed)")
    if kind.is_classification and len(site.train):
        y = np.asarray(targets[site.train])
        classes = np.unique(y if y.ndim == 1 else y.argmax(axis=1))
        if len(classes) < 2:
            problems.append(f"one outcome class in its training rows ({classes[0]})")
    for part in ("val", "test"):
        if not len(getattr(site, part)):
            problems.append(f"no {part} patients")
    return problems


def too_few_sites(n_usable: int, min_clients: int, excluded: list[tuple[str, list[str]]]) -> str:
    """The error when fewer sites can train than --min-clients, naming those left out and why."""
    detail = "; ".join(f"{site}: {', '.join(reasons)}" for site, reasons in excluded)
    return (f"{n_usable} sites can train, fewer than --min-clients {min_clients}"
            + (f" (left out: {detail})" if detail else ""))
