"""Out-of-core sorting of converted events, and a conversion that merges its parts from disk."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.data.ehr import get_source
from iatros.data.ehr.convert import Source, convert
from iatros.data.ehr.sorting import sort_memory, write_sorted
from iatros.errors import ConfigError

KEYS = ["subject_id", "time", "code"]
row = st.fixed_dictionaries({
    "subject_id": st.sampled_from(["1", "10", "2", None]),
    "time": st.one_of(st.none(), st.integers(0, 3).map(lambda h: dt.datetime(2020, 1, 1, h))),
    "code": st.sampled_from(["A", "B", "LOINC//1-8"]),
    "numeric_value": st.floats(allow_nan=False, allow_infinity=False, width=32),
})


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(row, max_size=40))
def test_sorted_output_equals_a_stable_in_memory_sort(tmp_path_factory, rows):
    frame = pl.DataFrame(rows, schema={"subject_id": pl.Utf8, "time": pl.Datetime("us"),
                                       "code": pl.Utf8, "numeric_value": pl.Float64})
    path = tmp_path_factory.mktemp("sorted") / "out.parquet"
    write_sorted(frame.lazy(), path, KEYS)
    expected = frame.sort(KEYS, maintain_order=True, nulls_last=False)
    assert pl.read_parquet(path).equals(expected)
    assert [p.name for p in path.parent.iterdir()] == ["out.parquet"]   # nothing left behind


def test_a_sort_larger_than_its_memory_limit_spills_and_stays_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("IATROS_SORT_MEMORY", "40MB")
    n = 2_000_000
    frame = pl.DataFrame({"subject_id": (pl.int_range(n, eager=True) * 7919 % 100_003).cast(pl.Utf8),
                          "time": pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 1)
                                                    + dt.timedelta(seconds=n - 1), "1s", eager=True),
                          "code": pl.Series(["A", "B", "C", "D"] * (n // 4))})
    write_sorted(frame.lazy(), tmp_path / "out.parquet", KEYS)
    assert pl.read_parquet(tmp_path / "out.parquet").equals(frame.sort(KEYS, maintain_order=True))


@pytest.mark.parametrize("value", ["lots", "12", "GB"])
def test_a_sort_memory_that_is_not_a_size_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("IATROS_SORT_MEMORY", value)
    with pytest.raises(ConfigError, match="IATROS_SORT_MEMORY.*500MB"):
        sort_memory()


def test_the_merge_reads_the_parts_from_disk_lazily(tmp_path, shared_data):
    """finish() gets the merged events as a lazy frame over parts/, not a table in memory."""
    physionet = shared_data / "physionet2012"
    if not (physionet / "set-a").is_dir():
        pytest.skip("physionet2012/set-a is not in the shared data folder")
    seen = []
    real = get_source("physionet2012")

    def finish(events, stays, skips):
        seen.append(type(events))
        return events, stays

    source = Source(real.name, real.description, lambda root: real.parts(root)[:1], finish)
    folder = tmp_path / "in" / "set-a"
    folder.mkdir(parents=True)
    for path in sorted((physionet / "set-a").glob("*.txt"))[:30]:
        (folder / path.name).write_bytes(path.read_bytes())
    tables = convert(source, tmp_path / "in", tmp_path / "out")
    assert seen == [pl.LazyFrame]
    assert tables.events.height == tables.manifest["n_events"] > 0
    assert tables.events.equals(tables.events.sort("subject_id", "stay_id", "time", "code",
                                                   maintain_order=True))
