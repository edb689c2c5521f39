"""A small generated PhysioNet 2012-format data root: deaths follow high heart rate and lactate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"


def write_physionet_root(root: Path, n: int = 80, seed: int = 0, set_name: str = "a",
                         first_id: int = 200000, with_lactate: bool = True) -> Path:
    """DATA_ROOT/physionet2012/set-{set_name}/ with `n` records and Outcomes-{set_name}.txt."""
    rng = np.random.default_rng(seed)
    folder = root / "physionet2012" / f"set-{set_name}"
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = [HEADER]
    for k in range(n):
        rid = first_id + k
        died = int(k % 4 == 0)
        lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", f"00:00,Age,{rng.integers(30, 90)}",
                 f"00:00,Gender,{k % 2}", "00:00,Height,170", f"00:00,ICUType,{1 + k % 4}",
                 f"00:00,Weight,{rng.integers(55, 110)}"]
        for hour in sorted(rng.choice(47, size=12, replace=False)):
            hr = rng.normal(110 if died else 80, 8)
            lines.append(f"{hour:02d}:{rng.integers(0, 60):02d},HR,{hr:.0f}")
            lines.append(f"{hour:02d}:30,MAP,{rng.normal(75, 10):.0f}")
        if with_lactate:
            for hour in (3, 20, 40):
                lines.append(f"{hour:02d}:10,Lactate,{rng.normal(5 if died else 1.5, 0.5):.1f}")
        lines.append(f"49:00,HR,{250 if died else 40}")  # after the 48 h window: must not be seen
        (folder / f"{rid}.txt").write_text("\n".join(lines) + "\n")
        los = int(rng.integers(2, 12))
        outcomes.append(f"{rid},10,3,{los},{los if died else -1},{died}")
    (root / "physionet2012" / f"Outcomes-{set_name}.txt").write_text("\n".join(outcomes) + "\n")
    return root
