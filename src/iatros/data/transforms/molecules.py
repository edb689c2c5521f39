"""Molecules as model inputs: graphs (atom and bond features), Morgan / ECFP fingerprints and
RDKit 2D descriptors, the torch Datasets the molecule models read, and nearest-neighbour Tanimoto
similarity (the applicability domain).

Task inputs are standardised SMILES strings (`data.formats.smiles.standardise`); each model's
dataset builder featurises them, so `predict` on new molecules goes through the same steps.

Atom features (133, Yang et al. 2019's D-MPNN featurisation): atomic number (0-99, other),
degree (0-5, other), formal charge (-1, -2, 1, 2, 0, other), chirality tag (0-3, other), total
hydrogens (0-4, other), hybridisation (sp, sp2, sp3, sp3d, sp3d2, other), aromatic, mass / 100.
Bond features (13): type (single, double, triple, aromatic), conjugated, in a ring, stereo (0-5,
other). A graph keeps RDKit's atom order, so atom attributions map onto the drawn molecule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from iatros.data.formats.smiles import parse, require_rdkit
from iatros.errors import CorruptDataError

ATOMIC_NUMBERS = 100
DEGREES = (0, 1, 2, 3, 4, 5)
CHARGES = (-1, -2, 1, 2, 0)
CHIRALITY = (0, 1, 2, 3)
HYDROGENS = (0, 1, 2, 3, 4)
HYBRIDISATION = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
# one-hot groups (each with an "other" slot), then aromatic and mass / 100
_GROUPS = (ATOMIC_NUMBERS + 1, len(DEGREES) + 1, len(CHARGES) + 1, len(CHIRALITY) + 1,
           len(HYDROGENS) + 1, len(HYBRIDISATION) + 1)
ATOM_FEATURES = sum(_GROUPS) + 2
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
STEREO = 6
BOND_FEATURES = len(BOND_TYPES) + 2 + STEREO + 1
FP_RADIUS = 2
FP_BITS = 2048


def _slot(value: Any, choices: tuple[Any, ...]) -> int:
    return choices.index(value) if value in choices else len(choices)


@dataclass(frozen=True)
class MolGraph:
    """One molecule: atom feature codes, directed bonds (both directions of each bond: edge 2k is
    a->b, 2k+1 is b->a) with their feature codes."""

    atom_codes: np.ndarray  # (n_atoms, 6) one-hot slots of each group
    atom_extra: np.ndarray  # (n_atoms, 2) aromatic, mass / 100
    src: np.ndarray  # (n_edges,)
    dst: np.ndarray  # (n_edges,)
    bond_features: np.ndarray  # (n_edges, BOND_FEATURES)

    @property
    def n_atoms(self) -> int:
        return len(self.atom_codes)

    @property
    def n_edges(self) -> int:
        return len(self.src)

    def atom_features(self) -> np.ndarray:
        """(n_atoms, ATOM_FEATURES) float32 one-hot features."""
        out = np.zeros((self.n_atoms, ATOM_FEATURES), dtype=np.float32)
        offset = 0
        rows = np.arange(self.n_atoms)
        for j, size in enumerate(_GROUPS):
            out[rows, offset + self.atom_codes[:, j]] = 1.0
            offset += size
        out[:, offset:] = self.atom_extra
        return out


def _graph(mol: Any) -> MolGraph:
    codes, extra = [], []
    for atom in mol.GetAtoms():
        number = atom.GetAtomicNum()
        codes.append((number if 0 <= number < ATOMIC_NUMBERS else ATOMIC_NUMBERS,
                      _slot(atom.GetTotalDegree(), DEGREES),
                      _slot(atom.GetFormalCharge(), CHARGES),
                      _slot(int(atom.GetChiralTag()), CHIRALITY),
                      _slot(atom.GetTotalNumHs(), HYDROGENS),
                      _slot(str(atom.GetHybridization()), HYBRIDISATION)))
        extra.append((float(atom.GetIsAromatic()), 0.01 * atom.GetMass()))
    src, dst, bonds = [], [], []
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        feature = np.zeros(BOND_FEATURES, dtype=np.float32)
        kind = str(bond.GetBondType())
        if kind in BOND_TYPES:
            feature[BOND_TYPES.index(kind)] = 1.0
        feature[len(BOND_TYPES)] = float(bond.GetIsConjugated())
        feature[len(BOND_TYPES) + 1] = float(bond.IsInRing())
        feature[len(BOND_TYPES) + 2 + min(int(bond.GetStereo()), STEREO)] = 1.0
        src += [a, b]
        dst += [b, a]
        bonds += [feature, feature]
    return MolGraph(np.asarray(codes, dtype=np.int64).reshape(-1, len(_GROUPS)),
                    np.asarray(extra, dtype=np.float32).reshape(-1, 2),
                    np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                    np.asarray(bonds, dtype=np.float32).reshape(-1, BOND_FEATURES))


def _mol(smiles: str) -> Any:
    mol, error = parse(smiles)
    if mol is None:
        raise CorruptDataError(f"cannot featurise molecule: {error}")
    return mol


@lru_cache(maxsize=100_000)
def mol_graph(smiles: str) -> MolGraph:
    """The molecular graph of a SMILES (atoms in RDKit's order of the SMILES as written)."""
    return _graph(_mol(smiles))


@lru_cache(maxsize=100_000)
def _fingerprint(smiles: str, radius: int, bits: int, counts: bool) -> np.ndarray:
    generator = _generator(radius, bits)
    mol = _mol(smiles)
    fp = (generator.GetCountFingerprintAsNumPy(mol) if counts
          else generator.GetFingerprintAsNumPy(mol))
    return np.asarray(fp, dtype=np.uint8 if not counts else np.float32)


@lru_cache(maxsize=8)
def _generator(radius: int, bits: int) -> Any:
    require_rdkit()
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)


def fingerprints(smiles: Any, radius: int = FP_RADIUS, bits: int = FP_BITS,
                 counts: bool = False) -> np.ndarray:
    """(N, bits) Morgan fingerprints (ECFP4 for radius 2) as float32: bits, or counts."""
    out = np.zeros((len(smiles), int(bits)), dtype=np.float32)
    for i, s in enumerate(smiles):
        out[i] = _fingerprint(str(s), int(radius), int(bits), bool(counts))
    return out


@lru_cache(maxsize=1)
def descriptor_names() -> tuple[str, ...]:
    """The RDKit 2D descriptors of this RDKit version, in its order."""
    require_rdkit()
    from rdkit.Chem import Descriptors

    return tuple(name for name, _ in Descriptors._descList)


@lru_cache(maxsize=100_000)
def _descriptors(smiles: str) -> np.ndarray:
    from rdkit.Chem import Descriptors

    from iatros.data.formats.smiles import rdkit_messages

    with rdkit_messages():
        values = Descriptors.CalcMolDescriptors(_mol(smiles), missingVal=float("nan"))
    row = np.array([values.get(n, np.nan) for n in descriptor_names()], dtype=np.float64)
    row[~np.isfinite(row)] = np.nan
    return np.clip(row, -1e12, 1e12).astype(np.float32)


def descriptors(smiles: Any) -> np.ndarray:
    """(N, D) RDKit 2D descriptors (NaN where RDKit cannot compute one)."""
    return np.stack([_descriptors(str(s)) for s in smiles]).reshape(len(smiles),
                                                                  len(descriptor_names()))


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


class GraphDataset(Dataset):
    """Molecules as padded graphs, each item ({"atoms", "atom_mask", "bonds", "src", "dst",
    "rev", "edge_mask"[, "descriptors"]}, target): every item of one dataset is padded to its
    largest molecule, so the default collate stacks them; the network trims the padding and
    works on the flat batch graph."""

    def __init__(self, smiles: Any, targets: Any, *, target_dtype: torch.dtype,
                 with_descriptors: bool = False) -> None:
        self.graphs = [mol_graph(str(s)) for s in smiles]
        self.targets = np.asarray(targets)
        self.target_dtype = target_dtype
        self.max_atoms = max([g.n_atoms for g in self.graphs] + [1])
        self.max_edges = max([g.n_edges for g in self.graphs] + [1])
        self.descriptors = descriptors(smiles) if with_descriptors and len(smiles) else None

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        g = self.graphs[i]
        a, e = self.max_atoms, self.max_edges
        atoms = np.zeros((a, ATOM_FEATURES), dtype=np.float32)
        atoms[:g.n_atoms] = g.atom_features()
        bonds = np.zeros((e, BOND_FEATURES), dtype=np.float32)
        bonds[:g.n_edges] = g.bond_features
        index = np.zeros((3, e), dtype=np.int64)
        index[0, :g.n_edges], index[1, :g.n_edges] = g.src, g.dst
        index[2, :g.n_edges] = np.arange(g.n_edges) ^ 1  # the reverse of edge 2k is 2k+1
        item = {"atoms": torch.from_numpy(atoms),
                "atom_mask": torch.from_numpy(np.arange(a) < g.n_atoms),
                "bonds": torch.from_numpy(bonds), "src": torch.from_numpy(index[0]),
                "dst": torch.from_numpy(index[1]), "rev": torch.from_numpy(index[2]),
                "edge_mask": torch.from_numpy(np.arange(e) < g.n_edges)}
        if self.descriptors is not None:
            item["descriptors"] = torch.from_numpy(self.descriptors[i])
        return item, torch.as_tensor(self.targets[i], dtype=self.target_dtype)


def _target_dtype(kind: Any) -> torch.dtype:
    return torch.long if kind.class_indices else torch.float32


def graph_dataset(inputs: Any, targets: Any, kind: Any, train: bool = False,
                  params: dict[str, Any] | None = None) -> GraphDataset:
    """The `ModelSpec.dataset` of graph networks: padded molecular graphs (with RDKit 2D
    descriptors when the model's `descriptors` parameter is on)."""
    return GraphDataset(inputs, targets, target_dtype=_target_dtype(kind),
                        with_descriptors=bool((params or {}).get("descriptors", False)))


class FingerprintDataset(Dataset):
    """Molecules as Morgan fingerprint vectors."""

    def __init__(self, smiles: Any, targets: Any, *, target_dtype: torch.dtype,
                 radius: int = FP_RADIUS, bits: int = FP_BITS, counts: bool = False) -> None:
        self.x = torch.from_numpy(fingerprints(smiles, radius, bits, counts))
        self.targets = np.asarray(targets)
        self.target_dtype = target_dtype

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], torch.as_tensor(self.targets[i], dtype=self.target_dtype)


def fingerprint_params(params: dict[str, Any] | None) -> tuple[int, int, bool]:
    params = params or {}
    return (int(params.get("radius", FP_RADIUS)), int(params.get("bits", FP_BITS)),
            bool(params.get("counts", False)))


def fingerprint_dataset(inputs: Any, targets: Any, kind: Any, train: bool = False,
                        params: dict[str, Any] | None = None) -> FingerprintDataset:
    """The `ModelSpec.dataset` of fingerprint networks (`radius`, `bits`, `counts`)."""
    radius, bits, counts = fingerprint_params(params)
    return FingerprintDataset(inputs, targets, target_dtype=_target_dtype(kind), radius=radius,
                              bits=bits, counts=counts)


# --------------------------------------------------------------------------------------------
# Similarity
# --------------------------------------------------------------------------------------------


def domain_bits(smiles: Any) -> np.ndarray:
    """ECFP4 (2048 bits) packed into uint8 (N, 256): the fingerprints the applicability
    domain compares, whatever the model reads."""
    return np.packbits(fingerprints(smiles).astype(bool), axis=1)


def nearest_similarity(query: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False,
                       chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each query fingerprint (packed bits), the highest Tanimoto similarity to the
    reference set and the index of that nearest neighbour; `exclude_self` skips identical
    positions (query = reference, leave-one-out)."""
    q = np.unpackbits(np.asarray(query, dtype=np.uint8), axis=1).astype(np.float32)
    r = np.unpackbits(np.asarray(reference, dtype=np.uint8), axis=1).astype(np.float32)
    if not len(r):
        return np.zeros(len(q)), np.full(len(q), -1)
    r_count = r.sum(axis=1)
    best, where = np.zeros(len(q)), np.full(len(q), -1)
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        shared = block @ r.T
        union = block.sum(axis=1)[:, None] + r_count[None, :] - shared
        sim = np.where(union > 0, shared / np.maximum(union, 1), 1.0).astype(np.float32)
        if exclude_self:
            rows = np.arange(len(block))
            sim[rows, start + rows] = -1.0
        where[start:start + len(block)] = sim.argmax(axis=1)
        best[start:start + len(block)] = sim.max(axis=1)
    return best, where
