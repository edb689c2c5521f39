"""The cached, incremental conversion (`convert`), its cache's safety, and the CLI command."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from iatros.data.ehr import cached_events, convert, get_source, physionet2012
from iatros.data.ehr import fhir as fhir_source
from iatros.data.ehr.convert import FORMAT_VERSION
from iatros.errors import ConfigError, MissingDataError
from tests.data.ehr.builders import (
    one_patient,
    physionet_record,
    record_calls,
    write_bundle,
    write_physionet_set,
)

SOURCE = get_source("physionet2012")
OUTCOMES_A = ["1,6,1,5,-1,0", "2,16,8,8,-1,0", "3,21,11,19,30,1"]


def set_a(root: Path) -> Path:
    write_physionet_set(root, "a", {1: physionet_record(1), 2: physionet_record(2),
                                    3: physionet_record(3, lines=("00:07,HR,-4", "xx:yy,HR,abc"))},
                        OUTCOMES_A)
    return root


def add_set_b(root: Path) -> None:
    write_physionet_set(root, "b", {4: physionet_record(4), 5: physionet_record(5)},
                        ["4,1,1,1,-1,0", "5,1,1,1,-1,0"])


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes()
            for name in ("events.parquet", "stays.parquet", "manifest.json")}


def test_the_output_folder_holds_events_stays_and_a_manifest(tmp_path):
    tables = convert(SOURCE, set_a(tmp_path / "in"), tmp_path / "out")
    out = tmp_path / "out"
    assert tables.path == out
    assert pl.read_parquet(out / "events.parquet").equals(tables.events)
    assert pl.read_parquet(out / "stays.parquet").equals(tables.stays)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION and manifest["source"] == "physionet2012"
    assert manifest["input"] == str(tmp_path / "in")
    assert list(manifest["parts"]) == ["set-a"] and manifest["reused_parts"] == []
    assert (manifest["n_subjects"], manifest["n_stays"], manifest["n_events"]) == (3, 3, 6)
    assert manifest["skipped"]["summary"] == "2 skipped (malformed line: 1, impossible value: 1)"
    assert {p.name for p in (out / "parts").iterdir()} == {
        "set-a.events.parquet", "set-a.stays.parquet", "set-a.json"}
    assert tables.manifest["from_cache"] is False and "from_cache" not in manifest
    assert "converted in" in tables.summary()
    # events are sorted by patient, stay, time and code
    assert tables.events.equals(tables.events.sort("subject_id", "stay_id", "time", "code"))


def test_a_second_call_reads_the_cache_without_converting(tmp_path, monkeypatch):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    first = convert(SOURCE, root, out)
    mtime = (out / "events.parquet").stat().st_mtime_ns

    def refuse(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(physionet2012, "convert_set", refuse)
    again = convert(SOURCE, root, out)
    assert again.manifest["from_cache"] is True and "(cached)" in again.summary()
    assert again.events.equals(first.events) and again.stays.equals(first.stays)
    assert (out / "events.parquet").stat().st_mtime_ns == mtime


def test_a_changed_file_is_converted_again(tmp_path, monkeypatch):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    calls = record_calls(monkeypatch, physionet2012, "convert_set")
    (root / "set-a" / "2.txt").write_text(physionet_record(2, lines=("00:07,HR,99",)))
    tables = convert(SOURCE, root, out)
    assert [p.name for p in calls] == ["set-a"] and tables.manifest["from_cache"] is False
    assert tables.events.filter(pl.col("stay_id") == "2")["numeric_value"].to_list() == [99.0]


def test_adding_a_set_converts_only_that_part(tmp_path, monkeypatch):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    calls = record_calls(monkeypatch, physionet2012, "convert_set")
    add_set_b(root)
    tables = convert(SOURCE, root, out)
    assert [p.name for p in calls] == ["set-b"]
    assert tables.manifest["reused_parts"] == ["set-a"]
    assert list(tables.manifest["parts"]) == ["set-a", "set-b"]
    assert tables.manifest["n_stays"] == 5
    # the reused part keeps its skips
    assert tables.manifest["skipped"]["n"] == 2


def test_adding_a_fhir_file_converts_only_that_file(tmp_path, monkeypatch):
    source, root, out = get_source("fhir"), tmp_path / "in", tmp_path / "out"
    write_bundle(root / "a.json", one_patient("p1", "e1"))
    convert(source, root, out)
    calls = record_calls(monkeypatch, fhir_source, "convert_file")
    write_bundle(root / "b.json", one_patient("p2", "e2"))
    tables = convert(source, root, out)
    assert [p.name for p in calls] == ["b.json"]
    assert len(tables.manifest["reused_parts"]) == 1 and tables.manifest["n_stays"] == 2


def fail_writing(monkeypatch, name: str) -> None:
    """Make the top-level write of `name` write a few bytes, then fail (a full disk, a kill)."""
    for frame, method in ((pl.DataFrame, "write_parquet"), (pl.LazyFrame, "sink_parquet")):
        original = getattr(frame, method)

        def write(self, file, *args, _original=original, **kwargs):
            if Path(file).name.startswith(f"{name}.tmp"):
                Path(file).write_bytes(b"PAR1 half")
                raise OSError("No space left on device")
            return _original(self, file, *args, **kwargs)

        monkeypatch.setattr(frame, method, write)


def convert_set_a_then_fail_writing(tmp_path, monkeypatch, name):
    """Convert set A, add set B, and make the next conversion fail writing `name`."""
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    before = snapshot(out)
    add_set_b(root)
    with monkeypatch.context() as m:
        fail_writing(m, name)
        with pytest.raises(OSError, match="No space left"):
            convert(SOURCE, root, out)
    return root, out, before


def test_a_failed_write_keeps_the_previous_cache_intact(tmp_path, monkeypatch):
    root, out, before = convert_set_a_then_fail_writing(tmp_path, monkeypatch, "events.parquet")
    assert snapshot(out) == before
    assert json.loads(before["manifest.json"])["n_stays"] == 3
    tables = convert(SOURCE, root, out)   # the stale manifest is not taken for the new inputs
    assert tables.manifest["from_cache"] is False and tables.manifest["n_stays"] == 5


def test_a_failed_write_leaves_no_partial_files(tmp_path, monkeypatch):
    _, out, _ = convert_set_a_then_fail_writing(tmp_path, monkeypatch, "events.parquet")
    assert [p.name for p in out.rglob("*.tmp*")] == []


def test_an_interrupted_conversion_never_leaves_a_cache_that_looks_valid(tmp_path, monkeypatch):
    root, out, _ = convert_set_a_then_fail_writing(tmp_path, monkeypatch, "stays.parquet")
    shutil.rmtree(root / "set-b")            # back to the inputs the manifest describes
    (root / "Outcomes-b.txt").unlink()
    tables = convert(SOURCE, root, out)
    assert set(tables.events["stay_id"]) <= set(tables.stays["stay_id"])
    assert tables.manifest["n_events"] == tables.events.height


def test_a_failure_while_swapping_the_tables_in_leaves_a_folder_that_is_converted_again(
        tmp_path, monkeypatch):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    add_set_b(root)
    original = os.replace

    def replace(src, dst):
        if Path(dst).name == "stays.parquet":     # events.parquet is already the new one
            raise OSError("killed")
        return original(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="killed"):
            convert(SOURCE, root, out)
    assert not (out / "manifest.json").exists()
    assert [p.name for p in out.rglob("*.tmp*")] == []
    shutil.rmtree(root / "set-b")            # back to the inputs the old manifest described
    (root / "Outcomes-b.txt").unlink()
    tables = convert(SOURCE, root, out)
    assert tables.manifest["from_cache"] is False and tables.manifest["n_stays"] == 3
    assert set(tables.events["stay_id"]) <= set(tables.stays["stay_id"])


def test_an_interrupted_part_is_converted_again_even_for_its_old_inputs(tmp_path, monkeypatch):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    record = root / "set-a" / "2.txt"
    text, st = record.read_text(), record.stat()
    record.write_text(physionet_record(2, lines=("00:07,HR,99",)))
    with monkeypatch.context() as m:
        fail_writing(m, "set-a.stays.parquet")   # set-a.events.parquet is already the new one
        with pytest.raises(OSError):
            convert(SOURCE, root, out)
    record.write_text(text)                  # the old file back, size and time as before
    os.utime(record, ns=(st.st_atime_ns, st.st_mtime_ns))
    add_set_b(root)                          # so that the top-level manifest misses
    tables = convert(SOURCE, root, out)
    assert tables.manifest["reused_parts"] == []
    assert tables.events.filter(pl.col("stay_id") == "2")["numeric_value"].to_list() == [
        73.0, 35.1, 80.0]


def test_a_failing_part_leaves_the_previous_cache_intact(tmp_path, monkeypatch):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    before = snapshot(out)
    add_set_b(root)

    def broken(folder, outcomes):
        raise RuntimeError("boom")

    monkeypatch.setattr(physionet2012, "convert_set", broken)
    with pytest.raises(RuntimeError, match="boom"):
        convert(SOURCE, root, out)
    assert snapshot(out) == before
    assert not (out / "parts" / "set-b.json").exists()


def test_unknown_sources_missing_paths_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown EHR source 'hl7v2'; known: physionet2012, mimic3, "
                       "mimic4, eicu, fhir, meds, omop"):
        get_source("hl7v2")
    with pytest.raises(MissingDataError, match="does not exist"):
        convert(SOURCE, tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="nothing to convert"):
        convert(SOURCE, tmp_path / "empty", tmp_path / "out")


def test_cached_events_converts_once_into_the_workspace_cache(tmp_path):
    root = set_a(tmp_path / "in")
    first = cached_events("physionet2012", root, tmp_path / "cache")
    assert first.path.parent == tmp_path / "cache" / "events"
    assert first.path.name.startswith("physionet2012-")
    again = cached_events("physionet2012", root, tmp_path / "cache")
    assert again.path == first.path and again.manifest["from_cache"] is True


def test_the_cli_prints_one_summary_line_with_patients_events_and_skip_reasons(tmp_path):
    from iatros.cli import app

    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["data", "convert", "physionet2012", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("physionet2012: 3 patients, 3 stays, 6 events, ")
    assert "2 skipped (malformed line: 1, impossible value: 1)" in line
    assert line.endswith(f"-> {out}")
    assert (out / "manifest.json").is_file()
    again = runner.invoke(app, ["data", "convert", "physionet2012", str(root), "--out", str(out)])
    assert again.exit_code == 0 and "(cached)" in again.stdout


@pytest.mark.parametrize("damaged", ["events.parquet", "parts/set-a.events.parquet"])
def test_a_damaged_cached_table_is_rebuilt_with_a_warning(tmp_path, caplog, damaged):
    import logging

    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    first = convert(SOURCE, root, out)
    first_events = first.events   # read now: the folder is converted again below
    target = out / damaged
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # truncated by a crash
    if damaged.startswith("parts/"):
        add_set_b(root)  # the tables are rebuilt from the parts, so the damaged one is read
    with caplog.at_level(logging.WARNING, logger="iatros"):
        again = convert(SOURCE, root, out)
    assert "damaged or incomplete" in caplog.text and "rebuilding" in caplog.text
    kept = again.events.filter(pl.col("stay_id").is_in(first.stays["stay_id"].implode()))
    assert kept.equals(first_events) and again.manifest["from_cache"] is False
    assert convert(SOURCE, root, out).manifest["from_cache"] is True  # sound again


def test_temporary_files_of_a_killed_conversion_are_removed_on_the_next_run(tmp_path):
    root, out = set_a(tmp_path / "in"), tmp_path / "out"
    convert(SOURCE, root, out)
    stale = [out / "events.parquet.tmp4242", out / "parts" / "set-a.events.parquet.tmp4242"]
    for path in stale:
        path.write_bytes(b"")  # the 0-byte file a SIGKILL leaves
    convert(SOURCE, root, out)
    assert not any(p.exists() for p in stale)
