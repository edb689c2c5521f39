"""ConText benchmark: negation, temporality and experiencer on the public NegEx / ConText test set.

`context_testset/rsAnnotations-1-120-random.txt` (2,376 sentences from 120 Pittsburgh reports,
github.com/chapmanbe/negex, Apache License 2.0) gives one condition per sentence with its
negation (Affirmed / Negated), temporality (Recent / Historical / Not particular = hypothetical)
and experiencer (Patient / Family member / Other). Protocol: the gold condition is located in its
sentence (case-insensitive, any run of whitespace between its words) and used as the entity span;
sentences where it cannot be located are counted and left out. iatros' ConText runs on the sentence
alone (no section context). Each attribute is scored as a binary label (negated, historical,
hypothetical, experiencer other than the patient): precision, recall and F1 with 95% bootstrap CIs
(1,000 resamples of sentences, seed 0). The set has no "possible" gold labels; the negation row
counts iatros' separate "uncertain" attribute as affirmed, and a second row counts it as negated,
the way the published GenNegEx figures count NegEx's "possible" output.

With --medspacy-python PATH (a python of a separate venv with medspacy 1.3.1), medspaCy's default
ConText rules and its default sentence splitter (PyRuSH) run on the same sentences and spans in a
subprocess. Tables go to benchmarks/results/nlp_context.json.

    python benchmarks/nlp_context.py --data-root ../shared/data \
        [--medspacy-python /tmp/medspacy-venv/bin/python]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables

TESTSET = Path("context_testset") / "rsAnnotations-1-120-random.txt"
ATTRIBUTES = ("negated", "historical", "hypothetical", "other")
LABELS = {"negated": "negation (negated vs affirmed)", "historical": "historical (vs recent / hypothetical)",
          "hypothetical": "hypothetical (\"not particular\")", "other": "experiencer other than the patient"}
# Published on this very file: GenNegEx v1.2 (Chapman's NegEx, Java), "Performance stats" in
# TestSet.md of github.com/chapmanbe/negex (commit 73d54f5e): GS negated 491 / affirmed 1,885;
# TP 471, FP 34, FN 20 (its 10 "possible" outputs counted as negated).
PUBLISHED_NEGEX = {"precision": 0.9327, "recall": 0.9593, "f1": 0.9458, "tp": 471, "fp": 34, "fn": 20}

MEDSPACY_RUNNER = r"""
import json, sys, time
t0 = time.perf_counter()
import medspacy
nlp = medspacy.load()
startup = time.perf_counter() - t0
items = json.load(sys.stdin)
out = []
t1 = time.perf_counter()
for text, start, end in items:
    doc = nlp.make_doc(text)
    span = doc.char_span(start, end, label="CONDITION", alignment_mode="expand")
    doc.ents = [span]
    for name, proc in nlp.pipeline:
        if name != "medspacy_target_matcher":
            doc = proc(doc)
    ent = doc.ents[0]
    out.append({"negated": bool(ent._.is_negated), "uncertain": bool(ent._.is_uncertain),
                "historical": bool(ent._.is_historical), "hypothetical": bool(ent._.is_hypothetical),
                "family": bool(ent._.is_family)})
seconds = time.perf_counter() - t1
json.dump({"flags": out, "startup_s": startup, "seconds": seconds, "version": medspacy.__version__,
           "pipeline": nlp.pipe_names}, sys.stdout)
"""


def read_testset(path: Path) -> list[dict[str, str]]:
    """The test set's rows as dicts (line, condition, sentence, negation, temporality, experiencer)."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        keys = ("line", "condition", "sentence", "negation", "temporality", "experiencer")
        return [dict(zip(keys, (c.strip() for c in row), strict=False)) for row in reader if row]


def locate(sentence: str, condition: str) -> tuple[int, int] | None:
    """Character span of the condition in the sentence: case-insensitive, any whitespace between
    its words; None when absent."""
    words = condition.split()
    if not words:
        return None
    match = re.search(r"\s+".join(map(re.escape, words)), sentence, re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def gold_labels(row: dict[str, str]) -> dict[str, bool]:
    """A row's binary gold labels."""
    return {"negated": row["negation"].lower() == "negated",
            "historical": row["temporality"].lower() == "historical",
            "hypothetical": row["temporality"].lower() in ("not particular", "hypothetical"),
            "other": row["experiencer"].lower() != "patient"}


def system_labels(flags: dict[str, bool], uncertain_as_negated: bool = False) -> dict[str, bool]:
    """A system's binary labels from its five ConText attributes."""
    return {"negated": flags["negated"] or (uncertain_as_negated and flags["uncertain"]),
            "historical": flags["historical"], "hypothetical": flags["hypothetical"],
            "other": flags["family"]}


def prf(gold: np.ndarray, pred: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Precision, recall, F1 of binary labels with 95% bootstrap CIs over sentences."""
    gold, pred = np.asarray(gold, bool), np.asarray(pred, bool)

    def scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
            r = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan)
            f = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
        return p, r, f

    tp, fp, fn = gold & pred, ~gold & pred, gold & ~pred
    out: dict[str, float] = {"n": int(gold.size), "gold": int(gold.sum()), "predicted": int(pred.sum()),
                             "tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}
    point = scores(*(np.array(float(x.sum())) for x in (tp, fp, fn)))
    idx = np.random.default_rng(seed).integers(0, gold.size, size=(n_boot, gold.size))
    boot = scores(*(x[idx].sum(axis=1).astype(float) for x in (tp, fp, fn)))
    for name, value, draws in zip(("precision", "recall", "f1"), point, boot, strict=True):
        out[name] = float(value)
        lo, hi = np.nanpercentile(draws, [2.5, 97.5]) if np.isfinite(draws).any() else (np.nan, np.nan)
        out[f"{name}_lo"], out[f"{name}_hi"] = float(lo), float(hi)
    return out


def run_iatros(items: list[tuple[str, int, int]]) -> dict:
    """iatros' ConText on each (sentence, start, end): flags, start-up and loop seconds."""
    t0 = time.perf_counter()
    from iatros.nlp.context import ConText
    from iatros.nlp.pipeline import make_nlp

    nlp = make_nlp()
    context = ConText(nlp)
    startup = time.perf_counter() - t0
    flags = []
    t1 = time.perf_counter()
    for text, start, end in items:
        doc = nlp(text)
        span = doc.char_span(start, end, alignment_mode="expand")
        attrs, _ = context.attributes(doc, span, context.cues(doc), set(range(span.start, span.end)))
        flags.append(attrs)
    return {"flags": flags, "startup_s": startup, "seconds": time.perf_counter() - t1}


def run_medspacy(python: str, items: list[tuple[str, int, int]]) -> dict:
    """medspaCy's default ConText on the same spans, in its own interpreter."""
    proc = subprocess.run([python, "-c", MEDSPACY_RUNNER], input=json.dumps(items), capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"medspaCy run failed ({python}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def score(rows: list[dict[str, str]], flags: list[dict[str, bool]], uncertain_as_negated: bool = False,
          n_boot: int = 1000) -> dict[str, dict[str, float]]:
    """Per-attribute scores of one system's flags against the rows' gold labels."""
    gold = [gold_labels(r) for r in rows]
    pred = [system_labels(f, uncertain_as_negated) for f in flags]
    return {a: prf(np.array([g[a] for g in gold]), np.array([p[a] for p in pred]), n_boot)
            for a in ATTRIBUTES}


def _ci(s: dict[str, float], key: str) -> str:
    if not np.isfinite(s[key]):
        return "n/a"
    return f"{s[key]:.3f} ({s[key + '_lo']:.3f}-{s[key + '_hi']:.3f})"


def score_rows(system: str, scores: dict[str, dict[str, float]], attributes=ATTRIBUTES) -> list[list[str]]:
    """Table rows: attribute, system, gold n, P, R, F1 (95% CI), TP/FP/FN."""
    return [[LABELS[a], system, f"{s['gold']} / {s['n']}", _ci(s, "precision"), _ci(s, "recall"),
             _ci(s, "f1"), f"{s['tp']}/{s['fp']}/{s['fn']}"] for a in attributes for s in [scores[a]]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    p.add_argument("--medspacy-python", help="python of a venv with medspacy 1.3.1 installed")
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args()
    note = timing_note()
    rows = read_testset(Path(args.data_root) / TESTSET)
    located, missing = [], []
    for r in rows:
        span = locate(r["sentence"], r["condition"])
        (located if span else missing).append((r, span))
    kept = [r for r, _ in located]
    items = [(r["sentence"], s[0], s[1]) for r, s in located]
    print(f"{len(rows)} sentences, condition located in {len(kept)}, not located in {len(missing)}",
          flush=True)

    systems = {"iatros": run_iatros(items)}
    if args.medspacy_python:
        systems["medspaCy"] = run_medspacy(args.medspacy_python, items)
    results = {"n_sentences": len(rows), "n_scored": len(kept),
               "not_located": [r["line"] for r, _ in missing], "systems": {}}
    table_rows, neg_rows, speed_rows = [], [], []
    for name, out in systems.items():
        label = f"medspaCy {out['version']} default rules" if name == "medspaCy" else "iatros ConText"
        s = score(kept, out["flags"], n_boot=args.boot)
        s_unc = score(kept, out["flags"], uncertain_as_negated=True, n_boot=args.boot)
        results["systems"][name] = {"scores": s, "uncertain_as_negated": s_unc,
                                    "startup_s": out["startup_s"], "seconds": out["seconds"]}
        table_rows += score_rows(label, s)
        neg_rows += score_rows(f"{label}, uncertain counted as negated", s_unc, ("negated",))
        speed_rows.append([label, f"{out['startup_s']:.2f}", f"{len(items) / out['seconds']:.0f}",
                           "spaCy blank English + iatros clinical sentence splitter" if name == "iatros"
                           else f"pipeline {', '.join(out.get('pipeline', []))}"])
        print(json.dumps({a: round(s[a]["f1"], 3) for a in ATTRIBUTES}), name, flush=True)
    pub = PUBLISHED_NEGEX
    neg_rows.append([LABELS["negated"], "NegEx (GenNegEx v1.2), published", "491 / 2376",
                     f"{pub['precision']:.3f}", f"{pub['recall']:.3f}", f"{pub['f1']:.3f}",
                     f"{pub['tp']}/{pub['fp']}/{pub['fn']}"])
    cmd = command_line()
    cols = ["attribute", "system", "gold positive / n", "precision (95% CI)", "recall (95% CI)",
            "F1 (95% CI)", "TP/FP/FN"]
    notes = [
        f"{len(rows):,} sentences of the NegEx / ConText test set (`context_testset`, Chapman et al.; "
        f"github.com/chapmanbe/negex); the gold condition is the entity span (located case-insensitively, "
        f"any whitespace between its words) in {len(kept):,} sentences; {len(missing)} where it could not be "
        f"located are left out (lines {', '.join(results['not_located'][:20]) or 'none'}"
        f"{' ...' if len(missing) > 20 else ''}). 95% CIs: 1,000 bootstrap resamples of sentences.",
        "Gold has no \"possible\" labels; here iatros' \"uncertain\" (and medspaCy's is_uncertain) count as "
        "affirmed; the next table also shows them counted as negated. Historical and hypothetical are each "
        "scored as a binary label against the single gold temporality; experiencer \"other\" = gold Family "
        "member or Other, predicted family. Sentences are scored alone: iatros' section rules (a FAMILY "
        "HISTORY header marks family) are not used.",
        "Cues come from the published lexicons (NegEx, ConText, medspaCy, negspacy) and iatros' earlier "
        "lists, not from this set; this is the single scored run (held-out test).",
    ]
    out = {"scores": Table(cols, table_rows, cmd, notes)}
    out["negation"] = Table(cols, neg_rows, cmd, [
        "Published NegEx figures: GenNegEx v1.2 on this same file, \"Performance stats\" in TestSet.md of "
        "github.com/chapmanbe/negex (TP 471, FP 34, FN 20; its 10 \"possible\" outputs count as negated). "
        "Harkema et al. 2009 (J Biomed Inform 42:839) evaluate ConText on their own report sets; their "
        "tables could not be retrieved here, so no ConText figure is quoted."])
    out["speed"] = Table(["system", "start-up (s)", "sentences/s", "pipeline"], speed_rows, cmd, [
        f"{len(items):,} sentences one at a time, one process; start-up = import, pipeline build and cue "
        "load. " + note])
    for key, table in out.items():
        print(f"\n{key}\n\n{table.markdown()}")
    write_tables("nlp_context", out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
