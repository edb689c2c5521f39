"""Model card: report.html content, n/a for undefined values, escaping and run-folder errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iatros.errors import RunError
from iatros.report import write_report

from . import (
    assert_png,
    make_binary_run,
    make_multiclass_run,
    make_null_run,
    make_regression_run,
)

DANGEROUS = "<script>alert('x')</script> & co"


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One binary run rendered once and shared: rendering figures is the slow part."""
    run_dir = make_binary_run(tmp_path_factory.mktemp("binary") / "run", description=DANGEROUS)
    report = write_report(run_dir)
    return report, report.read_text(encoding="utf-8")


def test_report_is_written_in_the_run_folder(binary_report: tuple[Path, str]) -> None:
    report, html = binary_report
    assert report == report.parent / "report.html"
    assert html.startswith("<!DOCTYPE html>")
    assert not list(report.parent.glob("*.tmp")), "temporary file left behind"


def test_report_has_task_headline_and_sections(binary_report: tuple[Path, str]) -> None:
    _, html = binary_report
    assert "breast-cancer-wdbc" in html
    assert ("On 60 held-out patients the model&#39;s AUROC was 0.912 (95% CI 0.850–0.960)."
            in html)
    for section in ("Summary", "Intended use", "Data", "Performance", "Calibration",
                    "Subgroup results", "External and additional evaluations", "Limitations",
                    "Figures", "Reproducibility"):
        assert re.search(rf"<h2[^>]*>{section}</h2>", html), section
    assert "Second reader for breast fine-needle aspirates" in html
    assert "Wolberg et al." in html
    assert "Splits are made by patient" in html
    assert "Share of patients with the condition whom the model flags." in html


def test_report_lists_subgroups_with_warnings(binary_report: tuple[Path, str]) -> None:
    _, html = binary_report
    for name in ("female", "male", "18-49", "50-79", "80+", "sex", "age_group"):
        assert f">{name}<" in html, name
    warnings = re.findall(r'<div class="warning">', html)
    assert len(warnings) == 1, "only the sex AUROC gap (0.12, CI 0.03-0.21) should be flagged"
    assert "female" in html.split('<div class="warning">')[1].split("</div>")[0]
    assert "Too small to audit reliably" in html
    assert "Equalized-odds difference" in html and "Demographic-parity difference" in html


def test_report_lists_limitations(binary_report: tuple[Path, str]) -> None:
    _, html = binary_report
    assert "Single-centre data from one US hospital." in html
    assert "Not validated on aspirates from men." in html
    assert "The test set is small (60 patients" in html
    assert "is wide" in html  # specificity at 90% sensitivity: CI 0.5-0.95
    assert "Groups of age_group too small to audit reliably: 80+ (n=4)." in html
    assert "Calibration (platt) was fitted on the validation split" in html


def test_report_links_figures_relatively(binary_report: tuple[Path, str]) -> None:
    report, html = binary_report
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert "figures/roc.png" in sources and "figures/calibration.png" in sources
    for source in sources:
        assert not source.startswith(("/", "http")), source
        assert_png(report.parent / source)
    assert "external-site-b" in html and "/data/site-b" in html
    assert "0.810" in html and "0.700–0.900" in html
    assert "not been validated externally" not in html


def test_report_escapes_html_from_the_config(binary_report: tuple[Path, str]) -> None:
    _, html = binary_report
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in html


def test_null_metrics_render_as_na(tmp_path: Path) -> None:
    html = write_report(make_null_run(tmp_path / "run")).read_text(encoding="utf-8")
    assert "AUROC could not be computed" in html
    assert html.count("n/a") > 20
    assert "No subgroup audit" in html
    assert "not been validated externally" in html
    assert "None" not in re.sub(r"<pre>.*?</pre>", "", html, flags=re.S)
    assert not re.search(r"\bnan\b", html, flags=re.I)


def test_multiclass_and_regression_reports(tmp_path: Path) -> None:
    multi = write_report(make_multiclass_run(tmp_path / "multi")).read_text(encoding="utf-8")
    assert "dermatology-3class" in multi and "melanoma" in multi
    assert "AUROC was 0.880 (95% CI 0.820–0.930)" in multi
    regression = write_report(make_regression_run(tmp_path / "reg")).read_text(encoding="utf-8")
    assert "RMSE was 31.200 (95% CI 26.000–36.500)" in regression
    assert "figures/predicted_vs_observed.png" in regression
    assert "figures/roc.png" not in regression


@pytest.mark.parametrize("name", ["config.json", "metrics.json", "predictions.csv"])
def test_missing_file_raises_run_error_naming_it(tmp_path: Path, name: str) -> None:
    run_dir = make_null_run(tmp_path / "run")
    (run_dir / name).unlink()
    with pytest.raises(RunError, match=re.escape(name)) as caught:
        write_report(run_dir)
    assert "\n" not in str(caught.value)
    assert not (run_dir / "report.html").exists()


def test_missing_metrics_message_says_how_to_resume(tmp_path: Path) -> None:
    run_dir = make_null_run(tmp_path / "run")
    (run_dir / "metrics.json").unlink()
    with pytest.raises(RunError) as caught:
        write_report(run_dir)
    message = str(caught.value)
    assert f"run folder {run_dir} has no metrics.json" in message
    assert f"iatros train breast-cancer-null --resume --out {run_dir}" in message


def test_unreadable_metrics_raises_run_error(tmp_path: Path) -> None:
    run_dir = make_null_run(tmp_path / "run")
    (run_dir / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RunError, match="metrics.json cannot be read"):
        write_report(run_dir)


def test_missing_run_folder_raises_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="does not exist"):
        write_report(tmp_path / "nowhere")
