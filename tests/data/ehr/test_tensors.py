"""EhrInputs helpers used to score new records: what a stay has, and removing one variable or
code as if never recorded (the basis of the service's "what moved the risk")."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from iatros.data.ehr.tensors import build_inputs, vocabulary_of


def _inputs():
    t0 = datetime(2024, 1, 1)
    stays = pl.DataFrame({"subject_id": ["p1", "p2"], "stay_id": ["s1", "s2"],
                          "start_time": [t0, t0], "end_time": [t0 + timedelta(hours=48)] * 2})
    events = pl.DataFrame({
        "subject_id": ["p1", "p1", "p1", "p2"], "stay_id": ["s1", "s1", "s1", "s2"],
        "time": [t0 + timedelta(hours=h) for h in (1, 2, 3, 5)],
        "code": ["HR", "HR", "DX//A", "HR"], "numeric_value": [80.0, 90.0, None, 70.0],
        "text_value": [None] * 4, "unit": [None] * 4})
    return build_inputs(events, stays, variables=["HR", "SBP"], codes=["DX//A"],
                        static=np.zeros((2, 1), np.float32), static_names=["static:age"], hours=24,
                        anchor="start")


def test_present_lists_what_a_stay_has():
    x = _inputs()
    assert x.present(0) == ["HR", "DX//A"] and x.present(1) == ["HR"]


def test_without_removes_a_variable_and_a_code_from_every_view():
    x = _inputs()
    no_hr = x.without("HR")
    names = x.feature_names
    assert np.isnan(np.asarray(no_hr)[0, names.index("HR:mean")])
    assert np.asarray(x)[0, names.index("HR:mean")] == 85.0
    no_dx = x.without("DX//A")
    assert np.asarray(no_dx)[0, names.index("count:DX//A")] == 0
    assert np.asarray(x)[0, names.index("count:DX//A")] > 0  # log1p of the count
    assert "DX//A" not in no_dx.present(0)


def test_vocabulary_of_inverts_feature_names():
    x = _inputs()
    variables, codes, static = vocabulary_of(x.feature_names)
    assert variables == ["HR", "SBP"] and codes == ["DX//A"]
    assert set(static) == {"static:age", "count:DX//A"}
