"""The model card: a self-contained ``report.html`` a clinician can read, built from a run folder.

Every section is assembled as plain strings here (numbers already formatted, "n/a" for
undefined values) so the Jinja2 template only lays them out; autoescape keeps text from the
config, such as a task description, from being read as HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from iatros.kinds import TargetKind
from iatros.report.figures import (
    METRIC_INFO,
    RunFiles,
    as_float,
    ci_bounds,
    figures_for_run,
    fmt,
    fmt_ci,
    fmt_count,
    load_run,
    metric_info,
    metric_text,
)
from iatros.run_folder import (
    EVALUATIONS,
    FEDERATION,
    REPORT,
    SELECTION,
    RunFolder,
    optional_json,
    write_text_atomic,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "model_card.html"

GAP_WARNING = 0.05  # a subgroup gap above this, with a CI excluding 0, gets a visible warning
SMALL_TEST_SET = 100  # fewer test patients than this: estimates are too uncertain to rely on
WIDE_CI = 0.2  # a 95% CI wider than this on a 0-1 metric is too uncertain to rely on
POOR_ECE = 0.05  # an ECE above this after calibration: predicted risks are visibly off

FAIRNESS_INFO: dict[str, tuple[str, str]] = {
    "equalized_odds_difference": (
        "Equalized-odds difference",
        "Largest difference between groups in sensitivity or false-positive rate at the "
        "threshold; 0 means the model errs equally often in every group."),
    "demographic_parity_difference": (
        "Demographic-parity difference",
        "Largest difference between groups in the share of patients the model flags; 0 means "
        "every group is flagged at the same rate."),
}

FIGURE_CAPTIONS_SURVIVAL = {
    "km_risk_groups": "Kaplan-Meier curves of test patients grouped by predicted risk (tertile cut "
                      "points fixed on the training set), with 95% bands, numbers at risk and the "
                      "log-rank test.",
    "survival_curves": "Predicted survival curves of a few test patients from low to high risk.",
    "survival_calibration": "Calibration at each horizon: mean predicted event probability against "
                            "the Kaplan-Meier observed proportion per decile of risk.",
}
FIGURE_CAPTIONS: dict[str, str] = {
    "roc": "ROC curve on the test set: how sensitivity trades against false alarms as the "
           "threshold moves.",
    "pr": "Precision-recall curve on the test set, with the prevalence as the no-skill "
          "baseline.",
    "confusion": "Confusion matrix on the test set at the reported threshold.",
    "predicted_vs_observed": "Predicted against observed values on the test set; points on "
                             "the dashed line are perfect predictions.",
    "calibration": "Reliability diagram: predicted risk against observed frequency, before and "
                   "after calibration, with the spread of predicted probabilities below.",
    "subgroups": "Primary metric per subgroup with 95% confidence intervals.",
    "learning_curve": "Training and validation loss per epoch.",
    "federated_rounds": "Federated training: each site's validation metric of the global model "
                        "after every round (and, in simulation, on all test patients), and the "
                        "model weights exchanged per round.",
}
ALL_CAPTIONS = {**FIGURE_CAPTIONS, **FIGURE_CAPTIONS_SURVIVAL}
FIGURE_ORDER = ["km_risk_groups", "survival_calibration", "survival_curves",
                "roc", "pr", "predicted_vs_observed", "confusion", "calibration", "subgroups",
                "learning_curve"]
# Figures already shown inside their own section; the Figures section shows the rest.
INLINE_FIGURES = {"calibration", "subgroups", "survival_calibration", "federated_rounds"}


# --------------------------------------------------------------------------------------------
# Small formatting helpers
# --------------------------------------------------------------------------------------------


def _cell(entry: Mapping[str, Any] | None) -> dict[str, str]:
    """A metric entry as display strings: value, CI and n."""
    entry = entry or {}
    return {"value": fmt(entry.get("value")), "ci": fmt_ci(entry.get("ci95")),
            "n": fmt_count(entry.get("n"))}


def _ci_width(entry: Mapping[str, Any] | None) -> float | None:
    lower, upper = ci_bounds((entry or {}).get("ci95"))
    # rounded so that a CI of exactly 0.2 (0.6-0.8 in floating point) does not count as wide
    return None if lower is None or upper is None else round(upper - lower, 9)


def _ci_excludes_zero(entry: Mapping[str, Any]) -> bool:
    lower, upper = ci_bounds(entry.get("ci95"))
    return lower is not None and upper is not None and (lower > 0 or upper < 0)


def _is_large_gap(entry: Mapping[str, Any] | None) -> bool:
    """A gap worth a warning: above GAP_WARNING and its CI excludes 0 (unlikely to be chance)."""
    entry = entry or {}
    value = as_float(entry.get("value"))
    return value is not None and abs(value) > GAP_WARNING and _ci_excludes_zero(entry)


def _format_date(created: Any) -> str:
    """An ISO timestamp as "2026-11-28 12:00 UTC"; anything else as given."""
    if not created:
        return "n/a"
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        return str(created)
    zone = moment.tzname() or ""
    return f"{moment:%Y-%m-%d %H:%M} {zone}".strip()


def _ordered_metric_keys(*tables: Mapping[str, Any]) -> list[str]:
    """Metric keys present in any table: known metrics in a fixed order, then the rest."""
    present = {key for table in tables for key in (table or {})}
    known = [key for key in METRIC_INFO if key in present]
    return known + sorted(present - set(known))


def _splits(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return metrics.get("splits") or {}


def _test_patients(run: RunFiles) -> int | None:
    splits = ((run.config.get("data") or {}).get("splits") or {})
    count = as_float((splits.get("test") or {}).get("patients"))
    return None if count is None else int(count)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def header_section(run: RunFiles) -> dict[str, Any]:
    """Task, model, date, version and run folder."""
    config = run.config
    return {
        "task": run.task,
        "description": str(config.get("description") or ""),
        "model": str(config.get("model") or run.metrics.get("model") or "n/a"),
        "modality": str(config.get("modality") or "n/a"),
        "target_kind": run.kind.value,
        "classes": [str(c) for c in config.get("classes") or []],
        "created": _format_date(config.get("created")),
        "version": str(config.get("iatros_version") or "n/a"),
        "run_dir": str(run.run_dir.resolve()),
    }


def headline(run: RunFiles) -> str:
    """One sentence: the primary metric on the test set with its 95% CI and n."""
    key = str(run.metrics.get("primary_metric") or "")
    entry = _splits(run.metrics).get("test", {}).get(key) or {}
    label = metric_info(key).label if key else "primary metric"
    patients = _test_patients(run)
    n = as_float(entry.get("n"))
    if patients is not None:
        who = f"{patients} held-out patients"
        if n is not None and int(n) != patients:
            who += f" ({int(n)} records)"
    elif n is not None:
        who = f"{int(n)} held-out patients"
    else:
        who = "the held-out test patients"
    if as_float(entry.get("value")) is None:
        return (f"On {who} the model's {label} could not be computed (n/a; 95% CI "
                f"{fmt_ci(entry.get('ci95'))}).")
    return f"On {who} the model's {label} was {metric_text(entry)}."


def _operating_point(run: RunFiles) -> str | None:
    """Sensitivity and specificity at the threshold, in words (runs that report both)."""
    test = _splits(run.metrics).get("test") or {}
    sens = as_float((test.get("sensitivity") or {}).get("value"))
    spec = as_float((test.get("specificity") or {}).get("value"))
    if sens is None or spec is None:
        return None
    classes = run.classes if len(run.classes) >= 2 else ["negative", "positive"]
    negative, positive = classes[0], classes[1]
    return (f"At the threshold of {fmt(run.metrics.get('threshold'))}, the model flagged "
            f"{sens:.1%} of patients labelled {positive} (sensitivity) and correctly left "
            f"{spec:.1%} of patients labelled {negative} unflagged (specificity).")


def summary_section(run: RunFiles, subgroups: list[dict[str, Any]],
                    limitations: list[str]) -> dict[str, Any]:
    """Plain-language summary: the headline, what it means, and what to watch out for."""
    key = str(run.metrics.get("primary_metric") or "")
    points = [p for p in [_operating_point(run)] if p]
    warnings = sum(len(s["warnings"]) for s in subgroups)
    if warnings:
        points.append(f"{warnings} subgroup difference(s) are larger than {GAP_WARNING} and "
                      "unlikely to be chance: see Subgroup results.")
    if limitations:
        points.append(f"{len(limitations)} limitation(s) are listed below; read them before "
                      "relying on the model.")
    return {"headline": headline(run), "meaning": metric_info(key).explanation if key else "",
            "points": points}


# What a split keeps together (config's `split_by`): its plural, column title and the sentence
# saying what that guarantees; anything else reads as patients.
SPLIT_UNITS = {
    "patient": ("patients", "Patients", "Splits are made by patient: all records of one patient "
                "are in the same split, so no patient seen during training is used to measure "
                "performance."),
    "scaffold": ("scaffolds", "Scaffolds", "Splits are made by Bemis-Murcko scaffold: all "
                 "molecules sharing a scaffold are in the same split, so the test molecules come "
                 "from chemical series the model did not see in training."),
    "molecule": ("molecules", "Molecules", "Splits are made by molecule at random: close "
                 "analogues of test molecules may be in training, so these figures are "
                 "optimistic for new chemical series (a scaffold split is the harder test)."),
}


def data_section(run: RunFiles) -> dict[str, Any]:
    """Data source and the rows, patients and positives of each split."""
    data = run.config.get("data") or {}
    splits = data.get("splits") or {}
    rows = []
    for name in ["train", "val", "test", *sorted(set(splits) - {"train", "val", "test"})]:
        if name not in splits:
            continue
        split = splits[name] or {}
        n_rows, positives = as_float(split.get("rows")), as_float(split.get("positives"))
        prevalence = positives / n_rows if positives is not None and n_rows else None
        rows.append({"name": name, "rows": fmt_count(split.get("rows")),
                     "patients": fmt_count(split.get("patients")),
                     "positives": fmt_count(positives), "prevalence": fmt(prevalence)})
    has_positives = any(s.get("positives") is not None for s in splits.values() if s)
    unit, unit_title, split_note = SPLIT_UNITS.get(str(run.config.get("split_by")),
                                                   SPLIT_UNITS["patient"])
    return {"source": str(run.config.get("source") or "n/a"),
            "unit": unit, "unit_title": unit_title, "split_note": split_note,
            "n_rows": fmt_count(data.get("n_rows")),
            "n_patients": fmt_count(data.get("n_patients")),
            "n_features": fmt_count(data.get("n_features")), "splits": rows,
            "has_positives": has_positives,
            "text_features": ", ".join(f"{c} ({n} distinct values)" for c, n in
                                       ((data.get("encoding") or {}).get("text_features")
                                        or {}).items())}


def performance_rows(metrics: Mapping[str, Any], primary: str = "") -> list[dict[str, Any]]:
    """One row per metric: label, test and validation cells, and a plain explanation."""
    splits = metrics.get("splits") or {}
    test, val = splits.get("test") or {}, splits.get("val") or {}
    return [{"key": key, "label": metric_info(key).label,
             "explanation": metric_info(key).explanation, "primary": key == primary,
             "test": _cell(test.get(key)), "val": _cell(val.get(key))}
            for key in _ordered_metric_keys(test, val)]


def per_label_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Multilabel runs: each label's test AUROC and AUPRC with CIs, on its known rows."""
    labels = (metrics.get("per_label") or {}).get("test") or {}
    return [{"label": str(name), "auroc": _cell(entry.get("auroc")),
             "auprc": _cell(entry.get("auprc")),
             "positives": fmt_count((entry.get("auroc") or {}).get("n_positive"))}
            for name, entry in labels.items()]


def molecule_section(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Molecule runs: the applicability domain (threshold, test share in domain, the primary
    metric in and out of it) and the ensemble's uncertainty (method, scale, test checks)."""
    domain, uncertainty = metrics.get("applicability_domain"), metrics.get("uncertainty")
    if not domain:
        return None
    test = domain.get("test") or {}
    primary = str(metrics.get("primary_metric") or "")
    parts = {label: (f"{_cell(entry).get('value')} ({_cell(entry).get('ci')}), "
                     f"n={entry.get('n')}" if entry.get("value") is not None
                     else f"n={entry.get('n')}: {entry.get('note', 'n/a')}")
             for label, entry in test.items()}
    checks = (uncertainty or {}).get("test") or {}
    return {"threshold": fmt(domain.get("threshold")), "reference": str(domain.get("reference")),
            "in_domain": fmt(domain.get("test_in_domain_fraction")),
            "median": fmt(domain.get("test_similarity_median")),
            "metric": metric_info(primary).label, "inside": parts.get("in_domain", "n/a"),
            "outside": parts.get("out_of_domain", "n/a"),
            "uncertainty": bool((uncertainty or {}).get("method")),
            "uncertainty_method": str((uncertainty or {}).get("method") or ""),
            "uncertainty_note": str((uncertainty or {}).get("note") or ""),
            "members": str((uncertainty or {}).get("members") or ""),
            "calibration": str((uncertainty or {}).get("calibration") or ""),
            "scale": fmt((uncertainty or {}).get("scale")),
            "coverage": fmt(checks.get("coverage_95")),
            "interval_ece": fmt(checks.get("interval_ece")),
            "spearman": fmt(checks.get("spearman_uncertainty_error"))}


def _correlation_text(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("median") is None:
        return "n/a"
    iqr, ci = entry.get("iqr") or [None, None], entry.get("median_ci95")
    return (f"{fmt(entry['median'])} (95% CI {fmt_ci(ci)}; IQR {fmt(iqr[0])} to {fmt(iqr[1])}; "
            f"{fmt_count(entry.get('n'))} groups)")


def per_group_section(metrics: Mapping[str, Any], shown: int = 5) -> dict[str, Any] | None:
    """Per-group (per-drug) correlations: their median and IQR on validation and test, the
    test groups ranked best and worst by Spearman, the histogram."""
    section = metrics.get("per_group")
    if not section:
        return None
    by, splits = str(section.get("by") or "group"), section.get("splits") or {}
    test = splits.get("test") or {}
    ranked = sorted((g for g in test.get("groups") or [] if (g.get("spearman") or {}).get(
        "value") is not None), key=lambda g: -g["spearman"]["value"])

    def row(g: Mapping[str, Any]) -> dict[str, str]:
        return {"name": str(g.get(by)), "n": fmt_count(g.get("n")),
                "pearson": _cell(g.get("pearson")), "spearman": _cell(g.get("spearman"))}

    return {"by": by, "method": str(section.get("method") or ""),
            "rows": [{"split": split, "pearson": _correlation_text(splits[split].get("pearson")),
                      "spearman": _correlation_text(splits[split].get("spearman")),
                      "too_small": fmt_count(splits[split].get("too_small")),
                      "constant": fmt_count(splits[split].get("constant_prediction"))}
                     for split in ("val", "test") if split in splits],
            "best": [row(g) for g in ranked[:shown]],
            "worst": [row(g) for g in ranked[-shown:][::-1]] if len(ranked) > shown else [],
            "figure": str(section.get("figure") or "")}


def calibration_section(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Calibration method, note, and ECE/Brier before vs after; None when not recorded."""
    calibration = metrics.get("calibration")
    if not calibration:
        return None
    before, after = calibration.get("test_before") or {}, calibration.get("test_after") or {}
    rows = [{"label": metric_info(key).label, "explanation": metric_info(key).explanation,
             "before": _cell(before.get(key)), "after": _cell(after.get(key))}
            for key in _ordered_metric_keys(before, after)]
    return {"method": str(calibration.get("method") or "none"),
            "note": str(calibration.get("note") or ""), "rows": rows}


def _small_group_names(entry: Mapping[str, Any]) -> list[str]:
    """The ``small_groups`` list as "name (n=4)" strings (entries may be names or dicts)."""
    groups = entry.get("groups") or {}
    names = []
    for item in entry.get("small_groups") or []:
        if isinstance(item, Mapping):
            name, n = item.get("group") or item.get("name") or "?", item.get("n")
        else:
            name, n = item, (groups.get(item) or {}).get("n") if isinstance(item, str) else None
        names.append(f"{name} (n={fmt_count(n)})" if n is not None else str(name))
    return names


def _gap_row(key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"label": metric_info(key).label, **_cell(entry),
            "best": str(entry.get("best_group") or "n/a"),
            "worst": str(entry.get("worst_group") or "n/a"), "flag": _is_large_gap(entry)}


def _gap_warning(row: Mapping[str, Any]) -> str:
    return (f"{row['label']} differs between groups (best: {row['best']}, worst: "
            f"{row['worst']}), gap {row['value']} (95% CI {row['ci']}). The gap is larger "
            f"than {GAP_WARNING} and unlikely to be chance; check the model in the "
            f"{row['worst']} group before use.")


def subgroup_attribute(attribute: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Tables, gaps, fairness differences, warnings and small groups for one attribute."""
    groups = entry.get("groups") or {}
    keys = _ordered_metric_keys(*[(g or {}).get("metrics") or {} for g in groups.values()])
    group_rows = [{"name": str(name), "n": fmt_count((g or {}).get("n")),
                   "prevalence": fmt((g or {}).get("prevalence")),
                   "cells": [_cell(((g or {}).get("metrics") or {}).get(k)) for k in keys]}
                  for name, g in groups.items()]
    gaps = [_gap_row(key, gap or {}) for key, gap in (entry.get("gaps") or {}).items()]
    fairness = []
    for key, (label, explanation) in FAIRNESS_INFO.items():
        if key in entry:
            fairness.append({"label": label, "explanation": explanation, **_cell(entry[key]),
                             "flag": _is_large_gap(entry[key])})
    warnings = [_gap_warning(row) for row in gaps if row["flag"]]
    warnings += [f"{row['label']} is {row['value']} (95% CI {row['ci']}): the model treats the "
                 f"{attribute} groups differently at the threshold." for row in fairness
                 if row["flag"]]
    return {"attribute": str(entry.get("attribute") or attribute),
            "threshold": fmt(entry.get("threshold")),
            "columns": [metric_info(k).label for k in keys], "groups": group_rows,
            "has_prevalence": any(as_float((g or {}).get("prevalence")) is not None
                                  for g in groups.values()),
            "gaps": gaps, "fairness": fairness, "warnings": warnings,
            "small_groups": _small_group_names(entry)}


def subgroup_section(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One block per audited sensitive attribute."""
    subgroups = metrics.get("subgroups") or {}
    return [subgroup_attribute(name, entry or {}) for name, entry in subgroups.items()]


def _evaluation_entry(name: str, metrics: dict[str, Any] | str) -> dict[str, Any]:
    """One evaluations/NAME/metrics.json for the card, or an entry carrying why it is unusable."""
    if isinstance(metrics, str):
        return {"name": name, "error": metrics}
    primary = str(metrics.get("primary_metric") or "")
    splits = [{"split": split, "rows": performance_rows({"splits": {"test": table}}, primary)}
              for split, table in (metrics.get("splits") or {}).items()]
    return {"name": name, "error": "", "data_root": str(metrics.get("data_root") or "n/a"),
            "split": str(metrics.get("split") or "n/a"), "splits": splits,
            "external": bool(metrics.get("external")),
            "created": _format_date(metrics.get("created"))}


def privacy_section(run_dir: Path, metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Differential privacy spent in training and the measured membership-inference attack
    (`iatros audit RUN --membership`), when there is either."""
    spent = metrics.get("privacy")
    audit = optional_json(run_dir / EVALUATIONS / "membership-inference" / "privacy_audit.json")
    if not spent and not audit:
        return None
    out: dict[str, Any] = {"dp": None, "attack": None}
    if spent:
        out["dp"] = {"epsilon": fmt(spent.get("epsilon")), "delta": f"{float(spent['delta']):.2g}",
                     "target": fmt(spent.get("target_epsilon")),
                     "noise": fmt(spent.get("noise_multiplier")),
                     "clip": fmt(spent.get("max_grad_norm") or spent.get("clipping_norm")),
                     "steps": spent.get("steps") or spent.get("rounds"),
                     "unit": str(spent.get("unit") or "example"),
                     "mechanism": str(spent.get("mechanism") or "")}
    if audit:
        auroc = audit.get("auroc") or {}
        out["attack"] = {"name": str(audit.get("attack") or ""), "auroc": fmt(auroc.get("value")),
                         "ci": fmt_ci(auroc.get("ci95")), "advantage": fmt(audit.get("advantage")),
                         "n": audit.get("members")}
    return out


def sites_section(run_dir: Path, metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """A federated run: each site's patients and its test metric computed at the site, the
    sites left out and why, the largest gap between sites with its interval, rounds and traffic."""
    record = optional_json(run_dir / FEDERATION)
    if not record:
        return None
    primary = str(metrics.get("primary_metric") or "")
    tests = record.get("site_tests") or {}
    rows = [{"site": str(site.get("site")), "train": fmt_count(site.get("n-train")),
             "test": fmt_count(site.get("n-test")),
             "metric": metric_text((tests.get(str(site.get("site"))) or {}).get(primary))}
            for site in record.get("sites") or []]
    gap = (((metrics.get("subgroups") or {}).get("federated_site") or {}).get("gaps") or {}).get(primary)
    fed = record.get("federation") or {}
    rounds = record.get("rounds") or []
    traffic = (np.mean([(r.get("bytes_down") or 0) + (r.get("bytes_up") or 0) for r in rounds])
               if rounds else 0)
    return {"rows": rows, "metric": metric_info(primary).label if primary else "metric",
            "excluded": [f"{e.get('site')}: {'; '.join(e.get('reasons') or [])}"
                         for e in record.get("excluded") or []],
            "gap": metric_text(gap) if gap else "",
            "gap_groups": f"{gap.get('best_group')} vs {gap.get('worst_group')}" if gap else "",
            "strategy": str(fed.get("strategy") or ""), "rounds": len(rounds),
            "kept": str(record.get("kept_round") or len(rounds)),
            "keep_rule": str(fed.get("keep") or "last"),
            "local_epochs": str((record.get("plan") or {}).get("local_epochs") or ""),
            "traffic": f"{traffic / 1e6:.2f} MB", "seconds": fmt(record.get("seconds"), 1),
            "engine": str(record.get("engine") or "simulation"),
            "secagg": bool(fed.get("secagg"))}


def evaluations_section(run_dir: Path) -> list[dict[str, Any]]:
    """Additional evaluations of this model on other data copies or splits."""
    return [_evaluation_entry(name, metrics) for name, metrics in RunFolder(run_dir).evaluations()]


def _calibration_limitations(metrics: Mapping[str, Any], kind: TargetKind) -> list[str]:
    """Caveats about how far the predicted probabilities can be taken at face value."""
    if not kind.is_classification:
        return []
    calibration = metrics.get("calibration") or {}
    method = str(calibration.get("method") or "none")
    if not calibration or method.lower() == "none":
        return ["The predicted probabilities were not recalibrated; treat them as scores, not "
                "as risks."]
    source = str(calibration.get("fitted_on") or "val")
    fitted_on = "validation" if source == "val" else source
    notes = [f"Calibration ({method}) was fitted on the {fitted_on} split; predicted risks may "
             "drift at another hospital, in another population or after practice changes, and "
             "should be rechecked there."]
    ece = as_float(((calibration.get("test_after") or {}).get("ece") or {}).get("value"))
    if ece is not None and ece > POOR_ECE:
        notes.append(f"Even after calibration the expected calibration error on the test set is "
                     f"{ece:.3f}: predicted risks can be off by about that much on average.")
    if calibration.get("note"):
        notes.append(f"Calibration note: {calibration['note']}")
    return notes


def automatic_limitations(run: RunFiles, subgroups: list[dict[str, Any]],
                          evaluations: Sequence[Mapping[str, Any]]) -> list[str]:
    """Limitations read off the numbers: small test set, wide CIs, small groups, calibration."""
    test = _splits(run.metrics).get("test") or {}
    notes = []
    patients = _test_patients(run)
    primary_n = as_float((test.get(str(run.metrics.get("primary_metric"))) or {}).get("n"))
    n_test = patients if patients is not None else primary_n
    if n_test is not None and n_test < SMALL_TEST_SET:
        notes.append(f"The test set is small ({int(n_test)} patients, fewer than "
                     f"{SMALL_TEST_SET}); all estimates are uncertain.")
    for key in _ordered_metric_keys(test):
        width = _ci_width(test[key])
        if metric_info(key).bounded and width is not None and width > WIDE_CI:
            notes.append(f"The 95% CI of the test {metric_info(key).label} is wide "
                         f"({fmt_ci(test[key].get('ci95'))}, width {width:.3f}); the true value "
                         "could be much better or worse.")
    undefined = [metric_info(k).label for k in _ordered_metric_keys(test)
                 if as_float((test[k] or {}).get("value")) is None]
    if undefined:
        notes.append(f"Some test metrics could not be computed (shown as n/a): "
                     f"{', '.join(undefined)}.")
    if not subgroups:
        notes.append("No subgroup audit was possible: the data records no sensitive attributes, "
                     "so performance in specific patient groups is unknown.")
    for block in subgroups:
        if block["small_groups"]:
            notes.append(f"Groups of {block['attribute']} too small to audit reliably: "
                         f"{', '.join(block['small_groups'])}.")
    notes += _calibration_limitations(run.metrics, run.kind)
    if not any(ev.get("external") for ev in evaluations):
        notes.append("The model was evaluated only on held-out patients from the same data "
                     "source; it has not been validated externally.")
    return notes


def figure_list(figures: Mapping[str, str]) -> list[dict[str, str]]:
    """Figures in display order with captions and relative paths."""
    names = [n for n in FIGURE_ORDER if n in figures] + sorted(set(figures) - set(FIGURE_ORDER))
    return [{"name": name, "path": figures[name], "caption": ALL_CAPTIONS.get(name, name),
             "inline": name in INLINE_FIGURES} for name in names]


def reproducibility_section(run: RunFiles) -> dict[str, Any]:
    """Seed, training settings, bootstrap settings and the full config."""
    config, bootstrap = run.config, run.metrics.get("bootstrap") or {}
    return {
        "seed": str(config.get("seed", "n/a")),
        "epochs": str(config.get("epochs", "n/a")),
        "model": str(config.get("model") or "n/a"),
        "model_params": json.dumps(config.get("model_params") or {}, indent=2, sort_keys=True,
                                   default=str),
        "data_root": str(config.get("data_root") or "n/a"),
        "n_boot": fmt_count(bootstrap.get("n_boot")),
        "boot_seed": str(bootstrap.get("seed", "n/a")),
        "boot_unit": str(bootstrap.get("unit") or "n/a"),
        "boot_ci": fmt(bootstrap.get("ci"), 2),
        "config_json": json.dumps(config, indent=2, sort_keys=True, default=str),
    }


def explanations_section(run_dir: Path) -> list[dict[str, str]]:
    """Saved explanation figures (e.g. Grad-CAM overlays) listed in explanations.json."""
    items = RunFolder(run_dir).explanations()
    out = []
    for item in items if isinstance(items, list) else []:
        rel = Path(str(item.get("path", "")))
        rel = rel.relative_to(run_dir) if rel.is_absolute() and rel.is_relative_to(run_dir) else rel
        if (run_dir / rel).is_file():
            out.append({"path": rel.as_posix(), "caption": str(item.get("caption", "")),
                        "intro": str(item.get("intro", ""))})
    return out


def word_explanations_section(run_dir: Path) -> dict[str, Any] | None:
    """A note classifier's word attributions (explanations.json as a dict): each class's top
    terms and, for a few test notes, the terms that pushed them toward the predicted class."""
    data = RunFolder(run_dir).explanations()
    if not isinstance(data, dict) or "class_top_terms" not in data:
        return None
    classes = [{"name": str(name), "terms": ", ".join(map(str, terms))}
               for name, terms in (data.get("class_top_terms") or {}).items()]
    examples = [{"id": f"test note {k + 1}", "true": str(e.get("true", "")),
                 "predicted": str(e.get("predicted", "")), "probability": fmt(e.get("probability")),
                 "words": ", ".join(f"{w['term']} ({w['contribution']:+.2f})"
                                    for w in e.get("words") or [])}
                for k, e in enumerate(data.get("examples") or [])]
    return {"method": str(data.get("method", "")), "classes": classes, "examples": examples}


def selection_section(run_dir: Path) -> dict[str, Any] | None:
    """How `--model auto` chose the model: each candidate's cross-validated score."""
    table = optional_json(run_dir / SELECTION)
    if not isinstance(table, dict) or not table.get("candidates"):
        return None
    rows = [{"model": str(r.get("model")), "mean": fmt(r.get("mean")), "sd": fmt(r.get("sd")),
             "folds": ", ".join(fmt(v) for v in r.get("folds") or []),
             "chosen": r.get("model") == table.get("chosen")} for r in table["candidates"]]
    return {"metric": metric_info(str(table.get("metric") or "")).label, "folds": table.get("folds"),
            "chosen": str(table.get("chosen")), "rows": rows}


def cross_validation_section(run_dir: Path) -> dict[str, Any] | None:
    """`train --cv K`: pooled out-of-fold metrics with intervals, and the primary metric per fold."""
    table = RunFolder(run_dir).cross_validation()
    if not isinstance(table, dict) or not table.get("pooled"):
        return None
    pooled = table["pooled"]
    primary = str(table.get("primary_metric") or "")
    rows = [{"label": metric_info(key).label, "primary": key == primary, "value": _cell(pooled[key])}
            for key in _ordered_metric_keys(pooled, {})]
    return {"folds": table.get("folds"), "n": table.get("n"), "n_patients": table.get("n_patients"),
            "metric": metric_info(primary).label, "rows": rows,
            "fold_values": ", ".join(fmt(v) for v in table.get("fold_values") or []),
            "fold_mean": fmt(table.get("fold_mean")), "fold_sd": fmt(table.get("fold_sd")),
            "note": str(table.get("note") or "")}


def survival_calibration_rows(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """Per horizon: predicted vs Kaplan-Meier observed event probability and the GND test."""
    rows = []
    for entry in ((metrics.get("survival") or {}).get("calibration") or {}).values():
        gnd = entry.get("gnd") or {}
        rows.append({"horizon": fmt(entry.get("horizon"), 4),
                     "predicted": fmt(entry.get("predicted_overall")),
                     "observed": fmt(entry.get("observed_overall")),
                     "mad": fmt(entry.get("mean_abs_difference")),
                     "gnd": fmt(gnd.get("p_value")), "note": str(gnd.get("note") or "")})
    return rows


def build_context(run: RunFiles, figures: Mapping[str, str]) -> dict[str, Any]:
    """Everything the template shows, as display-ready values."""
    subgroups = subgroup_section(run.metrics)
    evaluations = evaluations_section(run.run_dir)
    config_limits = [str(item) for item in run.config.get("limitations") or []]
    auto_limits = automatic_limitations(run, subgroups, evaluations)
    primary = str(run.metrics.get("primary_metric") or "")
    return {
        "header": header_section(run),
        "summary": summary_section(run, subgroups, config_limits + auto_limits),
        "intended_use": str(run.config.get("intended_use") or ""),
        "data": data_section(run),
        "threshold": fmt(run.metrics.get("threshold")),
        "threshold_rule": str(run.metrics.get("threshold_rule") or ""),
        "is_binary": bool(run.metrics.get("threshold_rule")),
        "cross_fit": int(run.config.get("ensemble") or 1) if run.config.get("cross_fit") else 0,
        "performance": performance_rows(run.metrics, primary),
        "per_label": per_label_rows(run.metrics),
        "molecules": molecule_section(run.metrics),
        "per_group": per_group_section(run.metrics),
        "selection": selection_section(run.run_dir),
        "cross_validation": cross_validation_section(run.run_dir),
        "privacy": privacy_section(run.run_dir, run.metrics),
        "sites": sites_section(run.run_dir, run.metrics),
        "calibration": calibration_section(run.metrics),
        "survival_calibration": survival_calibration_rows(run.metrics),
        "subgroups": subgroups,
        "evaluations": evaluations,
        "explanations": explanations_section(run.run_dir),
        "word_explanations": word_explanations_section(run.run_dir),
        "limitations": config_limits,
        "auto_limitations": auto_limits,
        "figures": figure_list(figures),
        "repro": reproducibility_section(run),
    }


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def render(context: Mapping[str, Any]) -> str:
    """Render the model-card template with autoescaping on."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(TEMPLATE_NAME).render(**context)


def write_report(run_dir: Path) -> Path:
    """Draw the figures and write ``run_dir/report.html``; returns the report's path.

    Raises RunError naming the file when config.json, metrics.json or predictions.csv is
    missing or unreadable.
    """
    run = load_run(Path(run_dir))
    figures = figures_for_run(run)
    html = render(build_context(run, figures))
    return write_text_atomic(run.run_dir / REPORT, html)
