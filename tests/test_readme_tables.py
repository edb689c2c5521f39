"""The README's benchmark tables are rendered from benchmarks/results/*.json, never typed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(_spec)
sys.modules["readme_tables"] = readme_tables  # dataclasses look their module up
_spec.loader.exec_module(readme_tables)


def test_every_marked_readme_table_matches_its_benchmark_json():
    assert readme_tables.stale_blocks() == []


def test_the_readme_marks_at_least_one_table_per_benchmark_script():
    text = (ROOT / "README.md").read_text()
    marked = {m["key"].split("/")[0] for m in readme_tables.BLOCK.finditer(text)}
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"readme_tables"}
    assert scripts <= marked, f"benchmarks with no table in the README: {sorted(scripts - marked)}"


def test_a_hand_edited_table_is_caught_and_rerendered(tmp_path):
    results = tmp_path / "results"
    table = readme_tables.Table(["model", "AUROC"], [["gbm", "0.876"]], "python benchmarks/x.py",
                                ["Seed 0."])
    readme_tables.write_tables("x", {"main": table}, results=results)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results x/main -->\n| model | AUROC |\n|---|---|\n| gbm | 0.9 |\n"
                      "<!-- /results -->\nend\n")
    assert readme_tables.stale_blocks(readme, results) == [
        f"x/main: README differs from {results}/x.json"]
    rendered, missing = readme_tables.render(readme.read_text(), readme_tables.load_tables(results))
    readme.write_text(rendered)
    assert missing == [] and readme_tables.stale_blocks(readme, results) == []
    assert "| gbm | 0.876 |" in rendered and "Command: `python benchmarks/x.py`" in rendered


def test_a_marker_without_json_is_reported(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results nope/t -->\n<!-- /results -->\n")
    assert readme_tables.stale_blocks(readme, tmp_path) == [f"nope/t: no table in {tmp_path}"]


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        readme_tables.Table(["a", "b"], [["only one"]], "cmd")


def test_a_table_of_runs_from_several_invocations_gives_no_load_average(monkeypatch):
    monkeypatch.setenv("IATROS_THREADS", "2")
    assert "load average" in readme_tables.timing_note()
    gathered = readme_tables.timing_note(load=False)
    assert "load average" not in gathered and "IATROS_THREADS=2" in gathered
    assert "per run" in gathered
