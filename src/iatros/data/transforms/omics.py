"""Omics as model inputs: the block layout of a joined matrix, per-omic preprocessing fitted on
training samples only (variance filter, median imputation, standardisation) and the torch
Dataset the omics networks read.

A task's inputs are one float matrix, the omics side by side (`data.omics.join_omics`); the
layout (`blocks`: [[name, width], ...]) is a model parameter the task supplies. NaN marks a
missing value; a block that is all NaN in a row is an omic the sample lacks, which networks
mask rather than fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from iatros.errors import ConfigError
from iatros.kinds import TargetKind

MIN_OBSERVED = 2  # a feature seen in fewer training samples carries no variance to rank


def blocks_of(params: dict[str, Any] | None, width: int) -> list[tuple[str, int]]:
    """The (name, width) blocks of a matrix `width` columns wide: the `blocks` parameter, or one
    block named "omics" when none is given; a layout that does not add up is an error."""
    raw = (params or {}).get("blocks")
    if not raw:
        return [("omics", int(width))]
    try:
        blocks = [(str(name), int(size)) for name, size in raw]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"blocks must be [[name, width], ...], got {raw!r}") from e
    total = sum(size for _, size in blocks)
    if total != width or any(size < 1 for _, size in blocks):
        raise ConfigError(f"omics blocks {blocks} add up to {total} columns but the inputs have "
                          f"{width}")
    return blocks


def block_slices(blocks: Sequence[tuple[str, int]]) -> list[slice]:
    """Column slices of each block, in order."""
    out, start = [], 0
    for _, size in blocks:
        out.append(slice(start, start + size))
        start += size
    return out


def present_blocks(x: np.ndarray, blocks: Sequence[tuple[str, int]]) -> np.ndarray:
    """(rows, blocks) True where the row has at least one value in that block."""
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([~np.isnan(x[:, s]).all(axis=1) for s in block_slices(blocks)])


@dataclass
class BlockScaling:
    """What one omic's preprocessing learned from training samples: the `keep` columns (highest
    training variance first, at most `max_features`), their median `fill`, mean `center` and
    standard deviation `scale` (after imputation)."""

    keep: np.ndarray
    fill: np.ndarray
    center: np.ndarray
    scale: np.ndarray


def fit_block_scaling(x: np.ndarray, n_keep: int) -> BlockScaling:
    """Variance filter, imputation values and standardisation of one block, from the training
    rows that have this omic. Features observed in fewer than `MIN_OBSERVED` rows or constant
    rank last; `n_keep` columns are always returned so a network's width does not depend on the
    data (surplus constant columns standardise to 0)."""
    x = np.asarray(x, dtype=np.float64)
    rows = ~np.isnan(x).all(axis=1)
    x = x[rows]
    n_keep = int(min(n_keep, x.shape[1]))
    observed = (~np.isnan(x)).sum(axis=0)
    with np.errstate(all="ignore"):
        variance = np.where(observed >= MIN_OBSERVED, np.nanvar(x, axis=0), -1.0) if len(x) else \
            np.full(x.shape[1], -1.0)
    variance = np.nan_to_num(variance, nan=-1.0)
    keep = np.sort(np.argsort(-variance, kind="stable")[:n_keep])
    x = x[:, keep]
    with np.errstate(all="ignore"):
        fill = np.nanmedian(x, axis=0) if len(x) else np.zeros(len(keep))
    fill = np.nan_to_num(fill, nan=0.0)
    filled = np.where(np.isnan(x), fill, x)
    center = filled.mean(axis=0) if len(x) else np.zeros(len(keep))
    scale = filled.std(axis=0) if len(x) else np.ones(len(keep))
    scale = np.where(scale > 1e-8, scale, 1.0)
    return BlockScaling(keep.astype(np.int64), fill, center, scale)


def omics_dataset(inputs: Any, targets: Any, kind: Any, train: bool = False,
                  params: dict[str, Any] | None = None) -> TensorDataset:
    """The `ModelSpec.dataset` of omics networks: float rows (NaN kept: the network masks
    missing omics and imputes missing values with what it learned on training samples) and
    targets typed for the kind's loss. Modality dropout happens inside the network."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    dtype = torch.long if TargetKind(kind).class_indices else torch.float32
    return TensorDataset(x, torch.as_tensor(np.asarray(targets), dtype=dtype))


def omics_width(inputs: Any, params: dict[str, Any] | None = None) -> int:
    """Input width: the joined matrix's columns."""
    return int(np.asarray(inputs).shape[1])
