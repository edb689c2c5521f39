"""benchmarks/scale.py's memory part: the replicated data it measures on, and its table."""

from __future__ import annotations

from iatros.data.ehr import convert, get_source
from tests.benchmark_module import load_benchmark
from tests.data.ehr.builders import physionet_record, write_physionet_set


def test_replicated_physionet_copies_are_distinct_stays_with_their_outcomes(tmp_path):
    scale = load_benchmark("scale")
    write_physionet_set(tmp_path / "src", "a", {132539: physionet_record(132539),
                                                132540: physionet_record(132540)},
                        ["132539,6,1,5,-1,0", "132540,16,8,8,-1,1"])
    out = scale.replicate_physionet(tmp_path / "src", tmp_path / "x3", 3)
    tables = convert(get_source("physionet2012"), out, tmp_path / "conv")
    stays = tables.stays.sort("stay_id")
    assert stays.height == 6 and stays["stay_id"].n_unique() == 6
    assert stays["stay_id"].to_list() == ["352539", "352540", "372539", "372540", "392539",
                                          "392540"]
    assert stays["died"].to_list() == [0, 1] * 3
    assert tables.manifest["skipped"]["n"] == 0


def test_the_memory_table_reports_growth_over_the_1x_peak():
    scale = load_benchmark("scale")
    rows = [{"what": "convert", "scale": s, "rows": 100 * s, "seconds": 1.0 * s,
             "peak_rss": 2**30 * (1 + s / 10), "peak_anon": 2**29} for s in scale.SCALES]
    table = scale.memory_table(rows)
    assert [r[1] for r in table.rows] == ["1x", "10x"]
    assert table.rows[1][-1] == f"{(1 + 10 / 10) / (1 + 1 / 10):.2f}"
