"""De-identification benchmark on the PhysioNet deid gold standard (ICU nursing notes).

Options compared, each as a PHI detector whose spans are scored against the gold phrases:
- `iatros rules, no span filter`: `iatros.nlp.phi.find_phi(filtered=False)` (patterns, name /
  place rules, philter's name and safe-word lists, Faker, GeoNames);
- `iatros rules + span filter`: the rules' findings through the learned span filter
  (`iatros.nlp.phi_filter`, gradient-boosted trees fitted on patients 1-40, shipped in the
  package): the default of `iatros nlp deid`;
- `BiLSTM-CRF tagger`: a `deid-physionet` run (`iatros train deid-physionet`, the one Trainer);
- `rules + tagger`: the union of both (`iatros nlp deid --tagger RUN`), with and without the span
  filter (findings the tagger agrees with are never filtered);
- `Presidio patterns`: presidio-analyzer's pattern recognizers (no spaCy NER model can be
  installed here, so no PERSON / LOCATION recognizer; `pip install .[deid-compare]`);
- `philter-lite`: philter's published rules (philter_delta config) with a stand-in part-of-
  speech tagger (NLTK's tagger data cannot be downloaded here), on a random sample of notes
  because it takes ~20 s a note on this machine.

Protocol: the public half holds patients 1-81. Rules were written and tuned, the span filter
fitted, and the tagger trained (patients 1-32) and early-stopped (33-40), on patients 1-40 only;
`--part cv` and `--part dev` score patients 1-40 and 33-40 (where options were compared);
`--part test` (default) scores patients 41-81, once at the end of each round of development
(twice so far). `--train-root A --test-root B` instead trains the tagger on every note under A
and scores every note under B (same file format), e.g. held-back notes nobody has looked at.

Scoring (iatros.nlp.deid_corpus): recall = gold phrases whose letters and digits are all
covered by predicted spans (gold offsets re-anchored within 2 characters), per type and overall;
precision = predicted spans overlapping a gold phrase (+-2 characters) / predicted spans; 95% CIs
from 1,000 bootstrap resamples of patients; notes/s single-threaded on this machine.

`--part cv` is the development view for every choice: 5-fold cross-validation by patient over
patients 1-40 (patient p in fold (p - 1) mod 5); the span filter of each fold is fitted on the
other four folds' candidates, from the shipped rules and from the rules without their
hand-made clinical-word list (so the filter sees the false positives that list hides on the notes
it was made from; repeated false-positive strings weighted 1/sqrt(count)), and its threshold is
the highest that loses no gold phrase out of fold (recall first). `--fit-filter` then fits the
filter on all of patients 1-40 at that threshold and writes src/iatros/nlp/phi_filter_weights.py.

    python benchmarks/deid.py --data-root ../shared/data [--tagger RUN | --runs DIR] [--part dev]
    python benchmarks/deid.py --data-root ../shared/data --part cv [--fit-filter]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from readme_tables import Table, command_line, timing_note, write_tables

from iatros.nlp.deid_corpus import SLACK, GoldNote, NoteScore, by_patients, read_corpus, score_note

Detector = Callable[[str], list[tuple[int, int]]]
GROUPS = {"name": ("HCPName", "PTName", "PTNameInitial", "RelativeProxyName"), "date": ("Date", "DateYear"),
          "location": ("Location",), "phone": ("Phone",), "other": ("Age", "Other")}
PUBLISHED = ("deid.pl, published (Neamatullah et al. 2008, BMC Med Inform Decis Mak 8:32), whole corpus "
             "(all 163 patients), their PPV definition", "0.967", "0.749")
PHILTER_SAMPLE = 30
OPTIONS = "unfiltered,rules,tagger,union-unfiltered,union,presidio,philter"
DEV_PATIENTS = (1, 40)
FOLDS = 5
THRESHOLDS = [round(0.01 * k, 2) for k in range(1, 61)]
WEIGHTS_FILE = Path(__file__).resolve().parent.parent / "src" / "iatros" / "nlp" / "phi_filter_weights.py"


@dataclass
class Result:
    """One option's per-note scores on a part, and its speed."""

    name: str
    scores: list[tuple[str, NoteScore]]  # (patient, score)
    seconds: float
    note: str = ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("IATROS_DATA"),
                        help="folder holding physionet_deid/ (default: $IATROS_DATA)")
    parser.add_argument("--part", choices=("dev", "test", "cv"), default="test",
                        help="dev: patients 33-40; cv: 5-fold CV by patient over 1-40 (for choosing); "
                             "test: patients 41-81 (report)")
    parser.add_argument("--fit-filter", action="store_true",
                        help="with --part cv: fit the span filter on patients 1-40 at the CV threshold and "
                             "write src/iatros/nlp/phi_filter_weights.py")
    parser.add_argument("--train-root", help="train the tagger on every note here ...")
    parser.add_argument("--test-root", help="... and score every note here")
    parser.add_argument("--tagger", help="a finished deid-physionet run to use instead of training")
    parser.add_argument("--runs", default="runs/deid", help="where a trained tagger run goes")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--options", default=OPTIONS,
                        help="comma-separated subset of unfiltered,rules,tagger,union-unfiltered,union,"
                             "presidio,philter")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/deid.json")
    return parser.parse_args(argv)


def load_notes(args: argparse.Namespace) -> tuple[list[GoldNote], str]:
    """The notes to score and, in words, which they are."""
    if args.test_root:
        notes = read_corpus(args.test_root)
        return notes, f"every note under {Path(args.test_root).name} ({len(notes)} notes)"
    if not args.data_root:
        raise SystemExit("pass --data-root or set IATROS_DATA (the folder holding physionet_deid/)")
    low, high = (33, 40) if args.part == "dev" else (41, 81)
    notes = by_patients(read_corpus(args.data_root), low, high)
    return notes, f"patients {low}-{high} ({len(notes)} notes)"


def tagger_run(args: argparse.Namespace) -> Path:
    """The tagger's run folder: given, found finished in --runs, or trained now."""
    if args.tagger:
        return Path(args.tagger)
    from iatros import api

    name = "external" if args.train_root else "physionet-1-40"
    out = Path(args.runs) / name
    if (out / "metrics.json").is_file():
        return out
    if args.train_root:
        from iatros.tasks.deid import deid_task

        task = deid_task(args.train_root, args.test_root)
    else:
        task = "deid-physionet"
    return Path(api.train(task, data_root=args.data_root or ".", out=out, epochs=args.epochs,
                          train_overrides={"patience": 5}, register=False))


def rules_detector(filtered: bool = True, span_filter: Any = None) -> Detector:
    from iatros.nlp.phi import find_phi

    return lambda text: [(s.start, s.end) for s in find_phi(text, filtered=filtered, span_filter=span_filter)]


def tagger_detector(run: Path, with_rules: bool, span_filter: Any = None, filtered: bool = True) -> Detector:
    from iatros.api.nlp import load_tagger
    from iatros.nlp.phi import find_phi

    tagger = load_tagger(run)
    return lambda text: [(s.start, s.end) for s in find_phi(text, tagger=tagger, rules=with_rules,
                                                            span_filter=span_filter, filtered=filtered)]


def presidio_detector() -> Detector:
    """presidio-analyzer's US / generic pattern recognizers, offline (no public-suffix fetch)."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)
    from presidio_analyzer import predefined_recognizers as recognizers

    names = ("CreditCard", "Crypto", "Date", "Email", "Iban", "Ip", "MacAddress", "Phone", "Url", "UsBank",
             "UsItin", "UsLicense", "UsMbi", "UsNpi", "UsPassport", "UsSsn", "AbaRouting")
    active = [getattr(recognizers, f"{n}Recognizer")() for n in names]

    def detect(text: str) -> list[tuple[int, int]]:
        return [(r.start, r.end) for rec in active
                for r in rec.analyze(text, rec.supported_entities, None) or []]
    return detect


def philter_detector() -> Detector:
    """philter-lite's published configuration with a capitalisation-based stand-in POS tagger."""
    from importlib import resources

    import philter_lite
    import philter_lite.philter as philter

    def pos(text: str) -> list[tuple[str, str]]:
        return [(w, "CD" if w.isdigit() else "NNP" if w[:1].isupper() else "NN")
                for w in philter._get_clean(text)]

    philter._get_pos = pos
    config = resources.files("philter_lite").joinpath("configs/philter_delta.toml")
    filters = philter_lite.load_filters(str(config))

    def detect(text: str) -> list[tuple[int, int]]:
        _, exclude, _ = philter_lite.detect_phi(text, filters)
        return list(exclude.filecoords())
    return detect


def run_option(name: str, detect: Detector, notes: list[GoldNote], note: str = "") -> Result:
    """Score one detector on the notes (timed)."""
    scores = []
    detect("Warm-up: seen 7/22 by Dr. Smith at Calvert Hospital.")  # word lists, models load here
    start = time.perf_counter()
    for n in notes:
        scores.append((str(n.patient), score_note(n, detect(n.text))))
    return Result(name, scores, time.perf_counter() - start, note)


def totals(scores: Sequence[NoteScore]) -> dict[str, float]:
    """Recall per group and overall, precision, and the counts behind them."""
    out: dict[str, float] = {}
    for group, types in GROUPS.items():
        found = sum(s.found.get(t, 0) for s in scores for t in types)
        total = sum(s.total.get(t, 0) for s in scores for t in types)
        out[group], out[f"n_{group}"] = (found / total if total else float("nan")), total
    found = sum(sum(s.found.values()) for s in scores)
    total = sum(sum(s.total.values()) for s in scores)
    predicted = sum(s.predicted for s in scores)
    out.update(recall=found / total if total else float("nan"), n=total, predicted=predicted,
               precision=sum(s.true_spans for s in scores) / predicted if predicted else float("nan"))
    return out


def bootstrap(result: Result, n_boot: int, seed: int) -> dict[str, tuple[float, float]]:
    """95% CIs of recall and precision, resampling patients."""
    by_patient: dict[str, list[NoteScore]] = {}
    for patient, s in result.scores:
        by_patient.setdefault(patient, []).append(s)
    patients = sorted(by_patient)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"recall": [], "precision": []}
    for _ in range(n_boot):
        sample = [s for p in rng.choice(patients, size=len(patients)) for s in by_patient[str(p)]]
        t = totals(sample)
        for k in draws:
            if not np.isnan(t[k]):
                draws[k].append(t[k])
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items() if v}


def fmt(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def row(result: Result, n_boot: int, seed: int) -> list[str]:
    t = totals([s for _, s in result.scores])
    ci = bootstrap(result, n_boot, seed)
    r_lo, r_hi = ci.get("recall", (float("nan"),) * 2)
    p_lo, p_hi = ci.get("precision", (float("nan"),) * 2)
    return [result.name + (f" ({result.note})" if result.note else ""), fmt(t["name"]), fmt(t["date"]),
            fmt(t["location"]), fmt(t["phone"]), f"**{fmt(t['recall'])}** ({fmt(r_lo)}-{fmt(r_hi)})",
            f"{fmt(t['precision'])} ({fmt(p_lo)}-{fmt(p_hi)})",
            f"{len(result.scores) / result.seconds:.1f}" if result.seconds else "-"]


def options(args: argparse.Namespace, notes: list[GoldNote]) -> list[Result]:
    """Every requested option, scored on the notes."""
    wanted = [o.strip() for o in args.options.split(",") if o.strip()]
    results = []
    run = tagger_run(args) if {"tagger", "union", "union-unfiltered"} & set(wanted) else None
    for name in wanted:
        if name == "unfiltered":
            results.append(run_option("iatros rules, no span filter", rules_detector(False), notes))
        elif name == "rules":
            results.append(run_option("iatros rules + span filter (default)", rules_detector(), notes))
        elif name == "union" and run is not None:
            results.append(run_option("iatros rules + span filter + BiLSTM-CRF tagger (--tagger)",
                                      tagger_detector(run, True), notes))
        elif name == "union-unfiltered" and run is not None:
            results.append(run_option("iatros rules + BiLSTM-CRF tagger, no span filter",
                                      tagger_detector(run, True, filtered=False), notes))
        elif name == "tagger" and run is not None:
            results.append(run_option("BiLSTM-CRF tagger alone", tagger_detector(run, False), notes))
        elif name == "presidio":
            results += _optional("Presidio pattern recognizers (no NER model)", presidio_detector, notes)
        elif name == "philter":
            sample = random.Random(args.seed).sample(notes, min(PHILTER_SAMPLE, len(notes)))
            results += _optional("philter-lite, stand-in POS tagger", philter_detector, sample,
                                 f"random {len(sample)} of these notes")
    return results


def _optional(name: str, make: Callable[[], Detector], notes: list[GoldNote], note: str = "") -> list[Result]:
    try:
        detect = make()
    except ImportError as e:
        print(f"skipping {name}: {e} (pip install -c constraints.txt -e .[deid-compare] / philter-lite)")
        return []
    return [run_option(name, detect, notes, note)]


def protocol(args: argparse.Namespace) -> str:
    """How the scored notes relate to what the rules and the tagger were built on."""
    if args.test_root:
        return (f"Tagger trained on every note under {Path(args.train_root or '').name} (every fifth patient "
                f"for early stopping); rules as shipped.")
    if args.part == "dev":
        return ("Development view: the rules were tuned on patients 1-40 and the tagger stopped early on "
                "33-40, so these numbers are optimistic.")
    return ("Rules were written, the span filter fitted (threshold from 5-fold CV by patient) and the tagger "
            "trained (patients 1-32, early stopping on 33-40) on patients 1-40 only. Patients 41-81 have now "
            "been scored twice: once at the end of the first round (rules without the filter: recall 0.912, "
            "precision 0.665; rules + tagger: recall 0.956, precision 0.674) and once at the end of the "
            "second (ward, employer, pager and local-phone rules, the span filter), this table; nothing was "
            "changed after seeing it.")


# -- the span filter: cross-validation over patients 1-40, and the fit that ships ------------------
@dataclass
class Row:
    """One merged rule finding of a development note: its features, whether it overlaps a gold
    phrase, its patient and (for weighting) its lower-case text."""

    features: list[float]
    label: int
    patient: int
    text: str


def fold(patient: int) -> int:
    return (patient - 1) % FOLDS


def filter_rows(notes: Sequence[GoldNote], raw: bool = False) -> list[Row]:
    """The notes' merged rule findings as filter training rows (`raw`: found by the rules without
    their hand-made clinical-word list)."""
    from contextlib import nullcontext

    from iatros.nlp.phi import _RANK, rule_candidates
    from iatros.nlp.phi_filter import NoteContext, group_candidates, span_features
    from iatros.nlp.phi_lexicon import without_clinical_words

    rows = []
    with without_clinical_words() if raw else nullcontext():
        for n in notes:
            ctx = NoteContext(n.text)
            for g in group_candidates(rule_candidates(n.text), _RANK):
                label = int(any(g.start < p.end + SLACK and p.start - SLACK < g.end for p in n.phrases))
                rows.append(Row(span_features(ctx, g), label, n.patient, n.text[g.start:g.end].lower()))
    return rows


def fit_filter(rows: Sequence[Row], threshold: float, info: dict[str, Any] | None = None) -> Any:
    """The span filter fitted on `rows` (repeated false-positive strings weighted 1/sqrt(count))."""
    from collections import Counter

    from iatros.nlp.phi_filter import SpanFilter

    negatives = Counter(r.text for r in rows if not r.label)
    weights = [1.0 if r.label else negatives[r.text] ** -0.5 for r in rows]
    return SpanFilter.fit([r.features for r in rows], [r.label for r in rows], threshold=threshold,
                          sample_weight=weights, info=info)


def choose_threshold(notes: Sequence[GoldNote], filters: dict[int, Any]) -> float:
    """The highest threshold at which the out-of-fold filters lose no gold phrase of `notes`."""
    from iatros.nlp.phi import find_phi

    def found(threshold: float | None) -> int:
        total = 0
        for n in notes:
            f = filters[fold(n.patient)]
            f.threshold = threshold if threshold is not None else f.threshold
            spans = [(s.start, s.end)
                     for s in find_phi(n.text, filtered=threshold is not None, span_filter=f)]
            total += sum(score_note(n, spans).found.values())
        return total

    target = found(None)
    lo, hi = 0, len(THRESHOLDS) - 1  # found() falls as the threshold rises: bisect for the last keeping all
    if found(THRESHOLDS[lo]) < target:
        return 0.0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if found(THRESHOLDS[mid]) >= target:
            lo = mid
        else:
            hi = mid - 1
    return THRESHOLDS[lo]


def run_cv(args: argparse.Namespace) -> None:
    """5-fold CV by patient over 1-40: rules with and without the filter (and with the tagger on
    33-40 when one is given), the threshold, and with --fit-filter the shipped weights."""
    if not args.data_root:
        raise SystemExit("pass --data-root or set IATROS_DATA (the folder holding physionet_deid/)")
    notes = by_patients(read_corpus(args.data_root), *DEV_PATIENTS)
    print(f"building filter rows of {len(notes)} notes (shipped and raw lists) ...", flush=True)
    shipped, raw = filter_rows(notes), filter_rows(notes, raw=True)
    filters = {k: fit_filter([r for r in shipped + raw if fold(r.patient) != k], 0.5) for k in range(FOLDS)}
    threshold = choose_threshold(notes, filters)
    for f in filters.values():
        f.threshold = threshold
    print(f"threshold (highest losing no gold phrase out of fold): {threshold}")

    def by_fold(with_filter: bool) -> Detector:
        from iatros.nlp.phi import find_phi

        current: dict[str, int] = {}

        def detect(text: str) -> list[tuple[int, int]]:
            f = filters[current["fold"]]
            return [(s.start, s.end) for s in find_phi(text, filtered=with_filter, span_filter=f)]
        detect.current = current  # type: ignore[attr-defined]
        return detect

    results = []
    for name, with_filter in (("iatros rules, no span filter", False),
                              ("iatros rules + span filter (out of fold)", True)):
        detect = by_fold(with_filter)
        scores, seconds = [], 0.0
        for n in notes:
            detect.current["fold"] = fold(n.patient)  # type: ignore[attr-defined]
            start = time.perf_counter()
            spans = detect(n.text)
            seconds += time.perf_counter() - start
            scores.append((str(n.patient), score_note(n, spans)))
        results.append(Result(name, scores, seconds))
    if args.tagger or (Path(args.runs) / "physionet-1-40" / "metrics.json").is_file():
        run = tagger_run(args)
        late = [n for n in notes if n.patient >= 33]
        for name, with_rules in (("BiLSTM-CRF tagger alone, patients 33-40", False),
                                 ("rules + span filter + tagger, patients 33-40", True)):
            from iatros.api.nlp import load_tagger
            from iatros.nlp.phi import find_phi

            tagger = load_tagger(run)
            scores, seconds = [], 0.0
            for n in late:
                start = time.perf_counter()
                spans = [(s.start, s.end) for s in find_phi(n.text, tagger=tagger, rules=with_rules,
                                                            span_filter=filters[fold(n.patient)])]
                seconds += time.perf_counter() - start
                scores.append((str(n.patient), score_note(n, spans)))
            results.append(Result(name, scores, seconds))
    rows = [row(r, args.n_boot, args.seed) for r in results]
    counts = totals([s for _, s in results[0].scores])
    columns = ["option", "name R", "date R", "location R", "phone R", "overall recall (95% CI)",
               "precision (95% CI)", "notes/s"]
    notes_text = [
        f"Development view: 5-fold cross-validation by patient over patients 1-40 ({len(notes)} notes, "
        f"{int(counts['n'])} gold phrases: name {int(counts['n_name'])}, date {int(counts['n_date'])}, "
        f"location {int(counts['n_location'])}, phone {int(counts['n_phone'])}). The span filter of each "
        "fold was fitted on the other four folds; its threshold "
        f"({threshold}) is the highest that loses no gold phrase out of fold. The rules themselves were "
        "written on these patients, so their recall and precision here are optimistic (on patients 41-81, "
        "before this round, the rules had recall 0.912 and precision 0.665). Before this round the rules "
        "scored here recall 0.957 (name 0.981, date 0.986, location 0.866, phone 1.000), precision 0.805.",
        "The tagger rows score patients 33-40 only: the tagger was trained on 1-32 and early-stopped on "
        "33-40.",
        f"95% CIs: {args.n_boot:,} bootstrap resamples of patients.",
        timing_note(),
    ]
    for line in rows:
        print(" | ".join(line))
    for line in notes_text:
        print(line)
    if not args.no_write:
        write_tables("deid", {"cv": Table(columns, rows, command_line(), notes_text)})
    if args.fit_filter:
        final = fit_filter(shipped + raw, threshold,
                           info={"fitted_on": "PhysioNet deid patients 1-40, shipped and raw rules",
                                 "threshold_from": "5-fold CV by patient: highest losing no gold phrase",
                                 "n_rows": len(shipped) + len(raw)})
        write_weights(final)


def _json_lines(value: Any, width: int = 100) -> str:
    """JSON with one dict entry per line and number lists cut into lines of about `width`
    characters (strings never cut)."""
    import json

    if isinstance(value, dict):
        return "{" + ",\n".join(f"{json.dumps(k)}:{_json_lines(v, width)}" for k, v in value.items()) + "}"
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        lines, line = [], []
        for v in map(json.dumps, value):
            if line and sum(len(x) + 1 for x in line) + len(v) > width:
                lines.append(",".join(line))
                line = []
            line.append(v)
        return "[" + ",\n".join([*lines, ",".join(line)]) + "]"
    if isinstance(value, list):
        return "[" + ",\n".join(_json_lines(v, width) for v in value) + "]"
    return json.dumps(value)


def write_weights(span_filter: Any, path: Path = WEIGHTS_FILE) -> None:
    """The filter as a Python module of plain numbers (no pickle): WEIGHTS = {...}."""
    body = _json_lines(span_filter.to_dict())
    text = ('"""Weights of the shipped PHI span filter (`iatros.nlp.phi_filter`), written by\n'
            '`python benchmarks/deid.py --part cv --fit-filter`: gradient-boosted trees fitted on the\n'
            'PhysioNet deid notes of patients 1-40 (plain numbers, loaded with json; no pickle)."""\n\n'
            "import json\n\n"
            f'WEIGHTS: dict = json.loads("""\n{body}\n""")\n')
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(text) // 1024} KiB)")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.part == "cv":
        run_cv(args)
        return
    notes, which = load_notes(args)
    results = options(args, notes)
    rows = [row(r, args.n_boot, args.seed) for r in results]
    rows.append([PUBLISHED[0], "", "", "", "", PUBLISHED[1], PUBLISHED[2], ""])
    counts = totals([s for _, s in results[0].scores]) if results else {}
    columns = ["option", "name R", "date R", "location R", "phone R", "overall recall (95% CI)",
               "precision (95% CI)", "notes/s"]
    notes_text = [
        f"Scored on {which}: {int(counts.get('n', 0))} gold phrases (name {int(counts.get('n_name', 0))}, "
        f"date {int(counts.get('n_date', 0))}, location {int(counts.get('n_location', 0))}, phone "
        f"{int(counts.get('n_phone', 0))}, other {int(counts.get('n_other', 0))}).",
        "Recall: a gold phrase counts when predicted spans cover all its letters and digits (offsets "
        "re-anchored within 2 characters; on this copy none needed it). Precision: predicted spans "
        f"overlapping a gold phrase / all predicted spans. 95% CIs: {args.n_boot:,} bootstrap resamples of "
        "patients.",
        protocol(args),
        timing_note(),
    ]
    for line in rows:
        print(" | ".join(line))
    for line in notes_text:
        print(line)
    if not args.no_write and args.part == "test" and not args.test_root:
        write_tables("deid", {"main": Table(columns, rows, command_line(), notes_text)})


if __name__ == "__main__":
    main()
