"""Omics matrices: CSV, gzipped CSV and Parquet read alike; bad cells, ids and layouts get errors
naming the file, line, sample and column; joining reports ids present in one omic and not
another; per-omic preprocessing is fitted on the rows it is given only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iatros.data.omics import join_omics, read_matrix, read_table_columns
from iatros.data.transforms.omics import blocks_of, fit_block_scaling, present_blocks
from iatros.errors import ConfigError, CorruptDataError, MissingDataError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"sample": ["s1", "s2", "s3"], "ESR1": [1.5, 2.0, np.nan],
                         "ERBB2": [0.1, -0.2, 0.3]})


def test_csv_gzipped_csv_and_parquet_read_to_the_same_matrix(tmp_path: Path):
    frame = _frame()
    frame.to_csv(tmp_path / "m.csv", index=False)
    frame.to_csv(tmp_path / "m.csv.gz", index=False, compression="gzip")
    frame.to_parquet(tmp_path / "m.parquet", index=False)
    matrices = [read_matrix(tmp_path / name) for name in ("m.csv", "m.csv.gz", "m.parquet")]
    for matrix in matrices:
        assert list(matrix.index) == ["s1", "s2", "s3"]
        assert list(matrix.columns) == ["ESR1", "ERBB2"]
        assert np.isnan(matrix.loc["s3", "ESR1"])
        np.testing.assert_allclose(matrix.to_numpy(), matrices[0].to_numpy(), equal_nan=True)


def test_parquet_with_sample_ids_as_index(tmp_path: Path):
    _frame().set_index("sample").to_parquet(tmp_path / "m.parquet")
    assert list(read_matrix(tmp_path / "m.parquet").index) == ["s1", "s2", "s3"]


def _write_h5ad(path: Path, sparse: bool = False) -> None:
    anndata = pytest.importorskip("anndata", reason="reading .h5ad needs the omics extra")
    from scipy import sparse as sp

    frame = _frame().set_index("sample")
    x = frame.to_numpy(np.float32)
    obs = pd.DataFrame({"subtype": ["Basal", "LumA", "LumA"], "batch": [1, 2, 2]},
                       index=frame.index)
    anndata.AnnData(sp.csr_matrix(np.nan_to_num(x)) if sparse else x, obs=obs,
                    var=pd.DataFrame(index=frame.columns)).write_h5ad(path)


@pytest.mark.parametrize("sparse", [False, True])
def test_h5ad_reads_x_as_features_and_obs_as_annotations(tmp_path: Path, sparse: bool):
    _write_h5ad(tmp_path / "m.h5ad", sparse)
    matrix = read_matrix(tmp_path / "m.h5ad")
    assert list(matrix.index) == ["s1", "s2", "s3"]
    assert list(matrix.columns) == ["ESR1", "ERBB2"]  # obs columns are never features
    assert matrix.loc["s2", "ERBB2"] == pytest.approx(-0.2)
    labels = read_table_columns(tmp_path / "m.h5ad", ["subtype"])
    assert labels["subtype"].tolist() == ["Basal", "LumA", "LumA"]


def test_a_file_that_is_not_h5ad_is_named(tmp_path: Path):
    pytest.importorskip("anndata", reason="reading .h5ad needs the omics extra")
    (tmp_path / "m.h5ad").write_text("not hdf5")
    with pytest.raises(CorruptDataError, match=r"m\.h5ad: cannot read as AnnData"):
        read_matrix(tmp_path / "m.h5ad")


def test_missing_tokens_are_missing_values(tmp_path: Path):
    (tmp_path / "m.csv").write_text("id,a,b\nx,NA,1\ny,,2\nz,nan,null\n")
    matrix = read_matrix(tmp_path / "m.csv")
    assert np.isnan(matrix["a"]).all() and np.isnan(matrix.loc["z", "b"])


def test_a_non_numeric_cell_names_file_line_sample_and_column(tmp_path: Path):
    (tmp_path / "m.csv").write_text("id,ESR1,ERBB2\nA0FJ,1.0,2.0\nA13E,high,3.0\n")
    with pytest.raises(CorruptDataError) as err:
        read_matrix(tmp_path / "m.csv")
    message = str(err.value)
    assert "m.csv" in message and "line 3" in message and "'A13E'" in message
    assert "'ESR1'" in message and "'high'" in message


def test_duplicate_sample_ids_empty_files_and_unknown_formats_are_errors(tmp_path: Path):
    (tmp_path / "dup.csv").write_text("id,a\nx,1\nx,2\n")
    with pytest.raises(CorruptDataError, match="'x'.*more than once"):
        read_matrix(tmp_path / "dup.csv")
    (tmp_path / "ids.csv").write_text("id\nx\n")
    with pytest.raises(CorruptDataError, match="at least one feature column"):
        read_matrix(tmp_path / "ids.csv")
    (tmp_path / "m.xlsx").write_text("nope")
    with pytest.raises(ConfigError, match="unknown matrix format"):
        read_matrix(tmp_path / "m.xlsx")
    with pytest.raises(MissingDataError, match="absent.csv"):
        read_matrix(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="'sid' not found"):
        read_matrix(tmp_path / "dup.csv", sample_id="sid")


def test_label_columns_are_read_as_text_by_sample(tmp_path: Path):
    (tmp_path / "labels.csv").write_text("id,subtype\nx,Basal\ny,LumA\n")
    labels = read_table_columns(tmp_path / "labels.csv", ["subtype"])
    assert labels.loc["y", "subtype"] == "LumA"
    with pytest.raises(ConfigError, match="'stage'"):
        read_table_columns(tmp_path / "labels.csv", ["stage"])


def test_join_reports_ids_present_in_one_omic_and_not_another():
    mrna = pd.DataFrame({"g1": [1.0, 2.0, 3.0], "g2": [0.0, 1.0, 0.0]}, index=["a", "b", "c"])
    protein = pd.DataFrame({"p1": [5.0, 6.0]}, index=["a", "z"])
    table = join_omics({"mrna": mrna, "protein": protein}, ["a", "b", "c", "q"])
    assert table.blocks == [("mrna", 2), ("protein", 1)]
    assert table.feature_names == ["mrna:g1", "mrna:g2", "protein:p1"]
    assert list(table.samples) == ["a", "b", "c"]  # q is in no omic: dropped
    assert np.isnan(table.values[1:, 2]).all() and table.values[0, 2] == 5.0
    report = table.report()
    rows = {(r.sample, r.omic, r.action) for r in report.itertuples()}
    assert ("b", "protein", "omic treated as missing") in rows
    assert ("c", "protein", "omic treated as missing") in rows
    assert ("z", "protein", "left out") in rows  # in an omic, without a label
    assert ("q", "(all)", "sample dropped") in rows
    assert table.summary()["omics"]["protein"] == {"features": 1, "samples": 1}
    assert present_blocks(table.values, table.blocks).tolist() == [[True, True], [True, False],
                                                                   [True, False]]


def test_join_checks_a_declared_layout():
    mrna = pd.DataFrame({"g1": [1.0]}, index=["a"])
    with pytest.raises(CorruptDataError, match="expected 2"):
        join_omics({"mrna": mrna}, ["a"], widths={"mrna": 2})


def test_blocks_must_add_up_to_the_input_width():
    assert blocks_of(None, 5) == [("omics", 5)]
    assert blocks_of({"blocks": [["a", 2], ["b", 3]]}, 5) == [("a", 2), ("b", 3)]
    with pytest.raises(ConfigError, match="add up to 4"):
        blocks_of({"blocks": [["a", 1], ["b", 3]]}, 5)


def test_block_scaling_keeps_the_most_variable_training_features_and_ignores_absent_rows():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 0.01, 50), rng.normal(3, 2.0, 50), rng.normal(0, 1.0, 50),
                         np.full(50, 7.0)])
    x[5, 2] = np.nan
    absent = np.full((10, 4), np.nan)  # samples without this omic must not shift anything
    fitted = fit_block_scaling(np.vstack([x, absent]), 2)
    assert fitted.keep.tolist() == [1, 2]
    np.testing.assert_allclose(fitted.fill, np.nanmedian(x[:, [1, 2]], axis=0))
    filled = np.where(np.isnan(x[:, [1, 2]]), fitted.fill, x[:, [1, 2]])
    np.testing.assert_allclose(fitted.center, filled.mean(axis=0))
    np.testing.assert_allclose(fitted.scale, filled.std(axis=0))
    constant = fit_block_scaling(x, 4)
    assert constant.scale[3] == 1.0  # a constant feature standardises to 0, not to inf
