"""Splits that never put one patient (or site, or scaffold) in two of train / val / test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iatros.errors import ConfigError, CorruptDataError

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Row indices of each part. Rows of one group appear in exactly one part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {name!r}: expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: int(len(self.part(name))) for name in SPLIT_NAMES}


def _group_labels(groups: np.ndarray, strata: np.ndarray | None) -> tuple[np.ndarray, np.ndarray,
                                                                            np.ndarray | None]:
    """Unique groups, the row->group index, and one stratum per group (its most frequent)."""
    uniq, inverse = np.unique(groups.astype(str), return_inverse=True)
    if strata is None:
        return uniq, inverse, None
    strata = np.asarray(strata)
    codes = np.unique(strata.astype(str), return_inverse=True)[1]
    counts = np.zeros((len(uniq), codes.max() + 1), dtype=np.int64)
    np.add.at(counts, (inverse, codes), 1)
    return uniq, inverse, counts.argmax(axis=1)


def _allocate(order: np.ndarray, fractions: tuple[float, float, float]) -> list[np.ndarray]:
    """Cut an ordered list of groups into three parts by fraction, each non-empty when possible."""
    n = len(order)
    n_test = int(round(fractions[2] * n))
    n_val = int(round(fractions[1] * n))
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    n_train = n - n_val - n_test
    return [order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]]


def group_split(
    groups: np.ndarray,
    *,
    strata: np.ndarray | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Split:
    """Random train/val/test split by group (patient id), stratified by each group's label."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, "
                          f"got {fractions}")
    groups = np.asarray(groups)
    if len(groups) == 0:
        raise CorruptDataError("cannot split an empty dataset: no rows were loaded")
    uniq, inverse, group_strata = _group_labels(groups, strata)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    buckets = [np.arange(len(uniq))] if group_strata is None else [
        np.flatnonzero(group_strata == s) for s in np.unique(group_strata)
    ]
    for bucket in buckets:
        for i, chunk in enumerate(_allocate(rng.permutation(bucket), fractions)):
            parts[i].append(chunk)
    assigned = np.empty(len(uniq), dtype=np.int8)
    for i, chunks in enumerate(parts):
        assigned[np.concatenate(chunks)] = i
    row_part = assigned[inverse]
    return Split(*(np.flatnonzero(row_part == i) for i in range(3)))


def balanced_group_split(
    groups: np.ndarray,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Split:
    """Split by group filling parts by rows, as chemprop's balanced scaffold split does: groups
    too large for half of validation or test go first (shuffled), then the others (shuffled);
    each group goes to train while train has room, else validation, else test. Every molecule
    of a scaffold (the group) lands in the same part and the parts come close to their fractions
    in rows even when a few scaffolds are very common."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, "
                          f"got {fractions}")
    groups = np.asarray(groups).astype(str)
    if len(groups) == 0:
        raise CorruptDataError("cannot split an empty dataset: no rows were loaded")
    n = len(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(uniq))
    n_train, n_val = fractions[0] * n, fractions[1] * n
    n_test = n - n_train - n_val
    big = (sizes > n_val / 2) | (sizes > n_test / 2)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(big)),
                            rng.permutation(np.flatnonzero(~big))])
    assigned = np.empty(len(uniq), dtype=np.int8)
    filled = [0, 0]
    for g in order:
        if filled[0] + sizes[g] <= n_train:
            part = 0
        elif filled[1] + sizes[g] <= n_val:
            part = 1
        else:
            part = 2
        assigned[g] = part
        if part < 2:
            filled[part] += sizes[g]
    for part in (1, 2):  # few large groups can leave validation or test empty: give it one
        if len(uniq) >= 3 and not (assigned == part).any():
            donor = max((p for p in range(3) if p != part),
                        key=lambda p: int((assigned == p).sum()))
            candidates = np.flatnonzero(assigned == donor)
            assigned[candidates[np.argmin(sizes[candidates])]] = part
    row_part = assigned[inverse]
    return Split(*(np.flatnonzero(row_part == i) for i in range(3)))


def predefined_split(labels: np.ndarray, groups: np.ndarray | None = None) -> Split:
    """Use a split shipped with the dataset (values 'train'/'val'/'test'); check it does not leak."""
    labels = np.asarray(labels).astype(str)
    unknown = sorted(set(np.unique(labels)) - set(SPLIT_NAMES))
    if unknown:
        raise CorruptDataError(f"split column holds {unknown}: expected only train, val, test")
    split = Split(*(np.flatnonzero(labels == name) for name in SPLIT_NAMES))
    if groups is not None:
        assert_no_leak(split, groups)
    return split


def assert_no_leak(split: Split, groups: np.ndarray, what: str = "patient") -> None:
    """Raise when any group has rows in more than one part of the split."""
    groups = np.asarray(groups).astype(str)
    seen: dict[str, set[str]] = {}
    for name in SPLIT_NAMES:
        seen[name] = set(groups[split.part(name)])
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = seen[a] & seen[b]
        if shared:
            example = sorted(shared)[:3]
            raise CorruptDataError(
                f"{len(shared)} {what}(s) appear in both {a} and {b} (e.g. {example}): "
                f"the split would leak a {what} across parts"
            )


def carve_validation(split: Split, groups: np.ndarray, *, strata: np.ndarray | None = None,
                     fraction: float = 0.2, seed: int = 0) -> Split:
    """A split shipped with only train and test gets a validation part taken from train, by group."""
    if len(split.val) or len(split.train) == 0:
        return split
    train = split.train
    inner_strata = None if strata is None else np.asarray(strata)[train]
    inner = group_split(np.asarray(groups)[train], strata=inner_strata,
                        fractions=(1.0 - fraction, fraction, 0.0), seed=seed)
    return Split(train[np.sort(np.concatenate([inner.train, inner.test]))], train[inner.val], split.test)


def validation_fold(split: Split, groups: np.ndarray, fold: int, n_folds: int, *,
                    seed: int = 0) -> Split:
    """The same test part; train and validation re-cut so validation is fold `fold` of
    `n_folds` over the groups of train + val (cross-validation that never sees test); a row in
    both parts (a cross-fit run's split) counts once."""
    if n_folds < 2 or not 0 <= fold < n_folds:
        raise ConfigError(f"fold must be in 0..{n_folds - 1} of at least 2 folds, "
                          f"got {fold} of {n_folds}")
    pool = np.union1d(split.train, split.val)
    uniq, inverse = np.unique(np.asarray(groups).astype(str)[pool], return_inverse=True)
    if len(uniq) < n_folds:
        raise ConfigError(f"{len(uniq)} patients in train + val cannot fill {n_folds} folds")
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = np.empty(len(uniq), dtype=np.int64)
    fold_of[order] = np.arange(len(uniq)) % n_folds
    in_val = fold_of[inverse] == fold
    return Split(pool[~in_val], pool[in_val], split.test)
