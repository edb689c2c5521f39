"""A prediction from partial data says which columns each row lacked, whether they were absent
from the file or empty in that row."""

from __future__ import annotations

import pandas as pd

from iatros.pipeline.inputs import expected_columns, row_gaps


def test_row_gaps_name_absent_and_empty_columns_per_row():
    raw = pd.DataFrame({"age": [50, None], "sex": ["F", "M"]})
    assert row_gaps(raw, ["age", "sex", "bmi"]) == [["bmi"], ["age", "bmi"]]


def test_one_hot_features_count_as_given_by_their_raw_column():
    raw = pd.DataFrame({"horTh": ["no", None]})
    assert row_gaps(raw, ["horTh_no", "horTh_yes"]) == [[], ["horTh_no", "horTh_yes"]]


def test_expected_columns_come_from_the_encoding_when_there_is_one():
    config = {"data": {"features": ["a", "b_x"]}}
    assert expected_columns(config, None) == ["a", "b_x"]
    assert expected_columns(config, {"numeric": ["a"], "categorical": {"b": ["x"]}}) == ["a", "b"]
