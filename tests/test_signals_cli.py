"""`iatros signals rpeaks` and `iatros.api.signals.rpeaks` on a real MIT-BIH record beside a broken one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from iatros.api import signals as signals_api
from tests.cli_run import run_cli


@pytest.fixture
def records(shared_data, tmp_path) -> tuple[Path, Path]:
    """Record 100 (read-only, real) and a copy of it in tmp whose signal file is missing."""
    good = shared_data / "mitbih_arrhythmia" / "record100_wfdb" / "100"
    if not good.with_suffix(".atr").is_file():
        pytest.skip(f"MIT-BIH record 100 with annotations is absent ({good}.atr)")
    broken = tmp_path / "broken"
    broken.mkdir()
    for suffix in (".hea", ".atr"):
        shutil.copy(good.with_suffix(suffix), broken / f"100{suffix}")
    return good, broken / "100"


def test_api_scores_the_good_record_and_names_the_broken_one(records):
    good, broken = records
    rows = signals_api.rpeaks([broken, good.with_suffix(".hea")], methods=["neurokit"])
    failed = [r for r in rows if "error" in r]
    scored = [r for r in rows if "error" not in r]
    assert len(failed) == 1 and str(broken) in failed[0]["error"] and failed[0]["record"] == "100"
    assert len(scored) == 1 and scored[0]["beats"] == 2273 and scored[0]["sensitivity"] > 0.99
    (total,) = signals_api.pooled_by_method(rows)
    assert total["records"] == 1 and total["tp"] == scored[0]["tp"]


def test_folders_expand_to_their_annotated_records(records, tmp_path):
    good, _ = records
    assert signals_api.rpeaks([tmp_path / "nothing-here"], methods=["neurokit"])[0]["error"].endswith(
        "no WFDB record here (expected its header " + str(tmp_path / "nothing-here.hea") + ")")
    rows = signals_api.rpeaks([good.parent], methods=["neurokit", "pantompkins1985"])
    assert [(r["record"], r["method"]) for r in rows] == [("100", "neurokit"), ("100", "pantompkins1985")]


def test_cli_prints_a_table_with_a_pooled_row_and_names_the_failure(records, capsys):
    good, broken = records
    code, out, err = run_cli(capsys, "signals", "rpeaks", str(good), str(broken), "--no-progress")
    assert code == 0, err
    assert "pooled (1 records)" in out and "neurokit" in out and "2273" in out
    assert f"failed: {broken}" in err and "1 of 2 input(s) failed" in err


def test_cli_json_holds_every_row_and_the_pooled_totals(records, capsys):
    good, broken = records
    code, out, _ = run_cli(capsys, "signals", "rpeaks", f"{good}.atr", str(broken), "--method", "neurokit",
                           "--method", "hamilton2002", "--json", "--no-progress")
    payload = json.loads(out)
    assert code == 0
    assert [r.get("method") for r in payload["records"]] == ["neurokit", "hamilton2002", None]
    assert "error" in payload["records"][2] and str(broken) in payload["records"][2]["error"]
    assert {t["method"] for t in payload["pooled"]} == {"neurokit", "hamilton2002"}
    assert all(t["beats"] == 2273 for t in payload["pooled"])


def test_an_unknown_method_is_refused_with_the_list(records, capsys):
    good, _ = records
    code, _, err = run_cli(capsys, "signals", "rpeaks", str(good), "--method", "nope")
    assert code == 2 and "unknown R-peak method(s) ['nope']" in err and "pantompkins1985" in err


def test_all_inputs_failing_is_an_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "signals", "rpeaks", str(tmp_path / "missing"), "--no-progress")
    assert code == 2 and "all 1 input(s) failed" in err


def test_help_explains_the_scoring(capsys):
    code, out, _ = run_cli(capsys, "signals", "rpeaks", "--help")
    assert code == 0
    for words in ("EC57", "--method", "--reference", "--channel", "positive predictivity", "pooled"):
        assert words in out
