"""Atom attributions for molecules: integrated gradients on a graph network's atom features, atom
masking for any model, and the molecule drawn with its atoms coloured by attribution (SVG).

Integrated gradients (Sundararajan et al. 2017) integrate the gradient of one output along the
straight path from a molecule whose atom features are all zero (no atom information; bonds and
structure kept) to the molecule itself; an atom's attribution is the sum over its features, and
the attributions add up to the output minus the baseline's output. Atom masking replaces one atom
at a time by a dummy atom (`*`) and reads how much the output drops: it needs only predictions,
so it explains fingerprint models and forests too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iatros.errors import ConfigError

IG_STEPS = 32


def integrated_gradients(network: Any, inputs: dict[str, Any], unit: int, n_atoms: int,
                         steps: int = IG_STEPS) -> tuple[np.ndarray, float, float]:
    """(attribution per atom, output at the molecule, output at the baseline) of output column
    `unit`, for a network reading one padded molecule (`inputs`, batch of one, with "atoms")."""
    import torch

    if "atoms" not in inputs:
        raise ConfigError("integrated gradients need a graph network's atom features")
    network.eval()
    x = inputs["atoms"]
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    batch = {k: v.expand(steps, *v.shape[1:]) for k, v in inputs.items() if k != "atoms"}
    path = (alphas[:, None, None] * x).detach().requires_grad_(True)
    outputs = network({**batch, "atoms": path})
    grads = torch.autograd.grad(outputs[:, unit].sum(), path)[0]
    attribution = (x[0] * grads.mean(dim=0)).sum(dim=-1)[:n_atoms]
    with torch.no_grad():
        ends = network({**{k: v.expand(2, *v.shape[1:]) for k, v in inputs.items()
                           if k != "atoms"},
                        "atoms": torch.cat([x, torch.zeros_like(x)])})[:, unit]
    return (attribution.detach().cpu().numpy().astype(np.float64), float(ends[0]),
            float(ends[1]))


def masked_smiles(smiles: str) -> list[str | None]:
    """The molecule with each atom in turn replaced by a dummy atom (None where RDKit cannot
    write a readable SMILES for it)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ConfigError(f"cannot mask atoms of {smiles!r}: not a valid SMILES")
    out: list[str | None] = []
    for i in range(mol.GetNumAtoms()):
        edited = Chem.RWMol(mol)
        atom = edited.GetAtomWithIdx(i)
        atom.SetAtomicNum(0)
        atom.SetFormalCharge(0)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
        atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
        try:
            text = Chem.MolToSmiles(edited)
        except Exception:  # RDKit raises its own types on molecules it cannot write
            out.append(None)
            continue
        out.append(text if Chem.MolFromSmiles(text) is not None else None)
    return out


def masking_attributions(smiles: str, score: Callable[[Sequence[str]], np.ndarray],
                         unit: int) -> tuple[np.ndarray, float]:
    """(per-atom output drop when the atom is masked, output of the molecule); `score` maps
    SMILES to outputs (N,) or (N, units)."""
    masked = masked_smiles(smiles)
    readable = [s for s in masked if s is not None]
    values = np.asarray(score([smiles, *readable]), dtype=np.float64)
    values = values.reshape(len(values), -1)[:, unit if values.ndim > 1 else 0]
    base, rest = float(values[0]), iter(values[1:])
    return np.array([base - float(next(rest)) if s is not None else 0.0 for s in masked]), base


def _colour(weight: float, scale: float) -> tuple[float, float, float]:
    """Red for atoms that raise the output, blue for those that lower it, white for none."""
    a = 0.0 if scale <= 0 else min(abs(weight) / scale, 1.0) * 0.85
    return (1.0, 1.0 - a, 1.0 - a) if weight > 0 else (1.0 - a, 1.0 - a, 1.0)


def draw_attributions(smiles: str, weights: Sequence[float], out: Path, legend: str = "",
                      size: tuple[int, int] = (420, 320)) -> Path:
    """The molecule with each atom's disc coloured by its attribution (red raises the output,
    blue lowers it, the strongest atom at full colour), written as SVG; returns the path."""
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ConfigError(f"cannot draw {smiles!r}: not a valid SMILES")
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) != mol.GetNumAtoms():
        raise ConfigError(f"{len(weights)} attributions for a molecule of {mol.GetNumAtoms()} "
                          f"atoms")
    scale = float(np.abs(weights).max()) if len(weights) else 0.0
    colours = {i: _colour(float(w), scale) for i, w in enumerate(weights)}
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    drawer.drawOptions().legendFontSize = 14
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer, mol, legend=legend, highlightAtoms=list(colours), highlightAtomColors=colours,
        highlightAtomRadii={i: 0.45 for i in colours}, highlightBonds=[])
    drawer.FinishDrawing()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(drawer.GetDrawingText(), encoding="utf-8")
    tmp.replace(out)
    return out
