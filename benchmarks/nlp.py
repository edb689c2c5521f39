"""Clinical NLP benchmark: NER test F1 beside published figures, MTSamples specialty macro-F1,
negation accuracy on our labelled sentences, ROUGE of summaries against MTSamples descriptions,
and extraction throughput on this machine.

NER protocol: train on train, stop on devel (entity F1), report exact-match entity F1 on test
with a 95% bootstrap CI over sentences (the IOB files carry no document ids). Each NER row is one
`iatros train` run given by its arguments (`--ner "ner-ncbi-disease --model bilstm-crf-minilm
--ensemble 3"`); with --runs DIR a finished run there is reused instead of trained again. Every
ensemble's members are also scored alone, with the entity vote and a per-token vote, on devel
and test (how the vote was chosen). Tables go to benchmarks/results/nlp.json.

    python benchmarks/nlp.py --data-root ../shared/data --runs runs/nlp [--ner "TASK --model M" ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from readme_tables import Table, command_line, shown, timing_note, write_tables

HERE = Path(__file__).resolve().parent
NEGATION_SET = HERE / "data" / "negation_sentences.tsv"
PUBLISHED = {  # test entity F1 (%), (figure, source)
    "ner-ncbi-disease": {"BioBERT v1.1, PubMed-pretrained": (
        89.7, "Lee et al., Bioinformatics 36(4):1234-1240 (2020), NER results table, NCBI disease, "
              "BioBERT v1.1 (+ PubMed)")},
    "ner-bc5cdr": {},  # BioBERT reports chemical and disease separately, not this combined set
}
NER_ROWS = ("ner-ncbi-disease --model bilstm-crf-minilm --ensemble 3",
            "ner-ncbi-disease --model bilstm-crf --ensemble 3",
            "ner-bc5cdr --model bilstm-crf-minilm",
            "ner-bc5cdr --model bilstm-crf --epochs 15")
LABELS = {"bilstm-crf": "BiLSTM-CRF + char-CNN, from scratch",
          "bilstm-crf-minilm": "BiLSTM-CRF + char-CNN + frozen general MiniLM"}


def parse_row(row: str) -> argparse.Namespace:
    """A row's `iatros train` arguments: TASK [--model M] [--ensemble N] [--epochs E]."""
    parser = argparse.ArgumentParser(prog="row", add_help=False)
    parser.add_argument("task")
    parser.add_argument("--model")
    parser.add_argument("--ensemble", type=int)
    parser.add_argument("--epochs", type=int)
    return parser.parse_args(shlex.split(row))


def ner_result(row: str, data_root: str, runs: str | None, seed: int, rescore: bool = False) -> dict:
    """Train one NER row (or reuse its finished run in `runs`); its test scores and timing."""
    from iatros import api

    spec = parse_row(row)
    out = Path(runs) / "-".join(shlex.split(row)).replace("--", "") if runs else None
    if out is not None and (out / "metrics.json").exists():
        run = str(out)
    else:
        run = str(api.train(spec.task, data_root=data_root, epochs=spec.epochs, register=False,
                            ensemble=spec.ensemble, model=spec.model, seed=seed, out=out))
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    status = json.loads((Path(run) / "status.json").read_text())
    test = metrics["splits"]["test"]
    if rescore:  # score the saved members again with this version's code (e.g. its ensemble vote)
        test = api.evaluate(run, split="test")["splits"]["test"]
    config = json.loads((Path(run) / "config.json").read_text())
    log = Path(run) / "train_log.csv"
    epochs = None
    if log.exists():
        import pandas as pd

        frame = pd.read_csv(log)
        epochs = {"run": int(frame["epoch"].max()),
                  "best": int(frame.loc[frame["val_metric"].idxmax(), "epoch"])}
    return {"task": spec.task, "row": row, "run": run, "f1": test["entity_f1"],
            "precision": test["entity_precision"], "recall": test["entity_recall"],
            "train_seconds": status.get("train_seconds"), "epochs": epochs,
            "ensemble": int(config.get("ensemble") or 1), "model": config.get("model"),
            "command": f"iatros train {row} --seed {seed} --data-root {shown(data_root)}"}


def token_vote(members: list[np.ndarray]) -> np.ndarray:
    """Per-token majority of tag ids, ties to the first member: the vote entity voting replaced."""
    stacked = np.stack(members)
    values = np.unique(stacked)
    counts = np.stack([(stacked == v).sum(axis=0) + 0.5 * (stacked[0] == v) for v in values])
    return values[np.argmax(counts, axis=0)]


def member_result(run: str, data_root: str) -> dict:
    """Entity F1 (%) on devel and test of each ensemble member alone, of the entity vote the
    ensemble uses and of a per-token vote: how the vote was chosen (on devel)."""
    from iatros.evaluate import metrics as M
    from iatros.tasks.registry import get_task
    from iatros.train.predictors import load_predictor

    try:
        from iatros.pipeline.scoring.tokens import pad_tags
        from iatros.targets import majority_spans
    except ImportError:  # the layout before the pipeline refactor (e.g. commit 232af6b)
        from iatros.text_run import pad_tags

        from iatros.train.predictors import majority_spans

    config = json.loads((Path(run) / "config.json").read_text())
    task = get_task(config["task"])
    data = task.load(Path(data_root))
    members = load_predictor(Path(run)).members
    out: dict = {"run": run}
    for part in ("val", "test"):
        rows = task.split(data, config["seed"]).part(part)
        tags = [m.predict_scores(data.inputs[rows]) for m in members]

        truth = pad_tags(list(data.targets[rows]), tags[0].shape[1])

        def f1(scores: np.ndarray, truth: np.ndarray = truth) -> float:
            r = M.evaluate(truth, scores, "tokens", metrics=("entity_f1",), n_boot=0)
            return 100 * r["entity_f1"]["value"]
        out[part] = {**{f"member {k}": f1(t) for k, t in enumerate(tags)},
                     "entity vote": f1(majority_spans(tags)), "token vote": f1(token_vote(tags))}
    return out


def specialty_result(data_root: str) -> dict:
    from iatros import api

    t0 = time.perf_counter()
    run = api.train("mtsamples-specialty", data_root=data_root, register=False)
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    data = json.loads((Path(run) / "config.json").read_text())["data"]
    return {"run": str(run), "test": metrics["splits"]["test"], "seconds": time.perf_counter() - t0,
            "n_notes": data["n_rows"], "n_classes": len(data["splits"]["train"]["class_counts"])}


def negation_result() -> dict:
    from iatros.nlp import extract_text

    rows = list(csv.DictReader(NEGATION_SET.open(), delimiter="\t"))
    correct, missing = 0, 0
    for r in rows:  # the entity may be a longer concept that holds the term ("acute appendicitis")
        at = r["sentence"].lower().find(r["term"])
        ents = [e for e in extract_text(r["sentence"])["entities"]
                if at >= 0 and e["start"] < at + len(r["term"]) and at < e["end"]]
        if not ents:
            missing += 1
            continue
        correct += int(ents[0]["negated"]) == int(r["negated"])
    return {"n": len(rows), "correct": correct, "term_not_found": missing,
            "accuracy": correct / len(rows),
            "negated_share": sum(int(r["negated"]) for r in rows) / len(rows)}


def mtsamples_notes(data_root: str, n: int) -> list[tuple[str, str]]:
    from iatros.tasks.text import read_mtsamples

    frame = read_mtsamples(Path(data_root)).dropna(subset=["transcription", "description"])
    frame = frame.sample(n=min(n, len(frame)), random_state=0)
    return list(zip(frame["transcription"].astype(str), frame["description"].astype(str), strict=True))


def throughput_and_rouge(data_root: str, n: int) -> dict:
    from iatros.nlp.pipeline import ClinicalPipeline
    from iatros.nlp.summarize import rouge, summarize

    notes = mtsamples_notes(data_root, n)
    pipeline = ClinicalPipeline()
    pipeline.extract("warm up")
    t0 = time.perf_counter()
    docs = [pipeline.extract(text) for text, _ in notes]
    seconds = time.perf_counter() - t0
    scores = [rouge(summarize(text, 2, pipeline, extraction=doc)["summary"], ref)
              for (text, ref), doc in zip(notes, docs, strict=True)]
    chars = sum(len(t) for t, _ in notes)
    return {"n_notes": len(notes), "seconds": seconds, "notes_per_second": len(notes) / seconds,
            "mean_chars": chars / len(notes),
            "entities_per_note": sum(len(d["entities"]) for d in docs) / len(notes),
            "rouge": {k: statistics.mean(s[k] for s in scores) for k in ("rouge1", "rouge2", "rougeL")}}


def fmt(entry: dict) -> str:
    lo, hi = entry.get("ci95") or (None, None)
    ci = f" (95% CI {100 * lo:.1f}-{100 * hi:.1f})" if lo is not None else ""
    return f"{100 * entry['value']:.1f}{ci}"


def _pct(entry: dict) -> str:
    lo, hi = entry.get("ci95") or (None, None)
    return f"{100 * entry['value']:.1f}" + (f" ({100 * lo:.1f}-{100 * hi:.1f})" if lo is not None else "")


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f} min"


def tables(results: dict, args: argparse.Namespace, note: str) -> dict[str, Table]:
    """The NER table (with published rows), the ensemble members table and the other measures."""
    cmd = command_line()
    rows = []
    for task in dict.fromkeys(r["task"] for r in results["ner"]):
        mine = [r for r in results["ner"] if r["task"] == task]
        for r in mine:
            n_ent = r["f1"].get("n_entities")
            size = f"{r['f1']['n']} sentences" + (f", {n_ent} entities" if n_ent else "")
            what = f"`{r['model']}`" + (f", {r['ensemble']} members" if r["ensemble"] > 1 else ", 1 network")
            if r["epochs"] and r["ensemble"] == 1:
                what += f" (best devel epoch {r['epochs']['best']} of {r['epochs']['run']})"
            rows.append([f"`{task}`", size, what, f"`{r['command']}`", _pct(r["f1"]),
                         f"{100 * r['precision']['value']:.1f} / {100 * r['recall']['value']:.1f}",
                         _minutes(r["train_seconds"])])
        for name, (value, _) in PUBLISHED.get(task, {}).items():
            rows.append([f"`{task}`", "", f"published: {name}", "-", f"{value:.1f}", "", ""])
    sources = "; ".join(f"{name}: {src}" for pub in PUBLISHED.values() for name, (_, src) in pub.items())
    out = {"ner": Table(
        ["task", "n test", "model", "run", "test entity F1 (95% CI)", "P / R", "train time"], rows, cmd,
        ["Trained on train, early stopping on devel entity F1, exact-match entity F1 on test (span and "
         "type must match) with a 95% bootstrap CI (1,000 resamples over sentences: the IOB files carry "
         "no document ids); no biomedical pretrained weights (MiniLM is the general-domain "
         "all-MiniLM-L6-v2, frozen); ensembles keep an entity when most members predict it. "
         f"Published: {sources}. BioBERT reports BC5CDR's chemical and disease F1 separately, not "
         "this combined set.", note])}
    members = []
    for m in results["members"]:
        for part, label in (("val", "devel"), ("test", "test")):
            members.append([f"`{m['row']}`", label, *(f"{m[part][k]:.1f}" for k in m[part])])
    if members:
        width = max(len(r) for r in members)
        names = list(results["members"][0]["val"])
        members = [r for r in members if len(r) == width]
        out["ner-members"] = Table(["run", "split", *names], members, cmd,
                                   ["Entity F1 (%) of each member alone, of the entity vote the ensemble "
                                    "uses and of a per-token majority vote, no CI."])
    s = results["specialty"]["test"]
    g = results["negation"]
    e = results["extraction"]
    r = e["rouge"]
    out["measures"] = Table(["measure", "result", "how"], [
        ["`mtsamples-specialty` macro-F1", f"{_pct(s['f1'])}; accuracy {_pct(s['accuracy'])}",
         f"`iatros train mtsamples-specialty --data-root {shown(args.data_root)}`: "
         f"{results['specialty']['n_classes']} specialties, {results['specialty']['n_notes']:,} distinct "
         f"notes, 70/15/15 split grouped by note text, n = {s['f1']['n']} test notes, tf-idf + logistic "
         "regression"],
        ["negation accuracy", f"{g['correct']} / {g['n']} = {100 * g['accuracy']:.1f}%",
         f"`benchmarks/data/negation_sentences.tsv`: {g['n']} sentences we wrote "
         f"({100 * g['negated_share']:.0f}% negated; NegEx cues, backward cues, pseudo-cues, terminators, "
         f"lists); an entity counts when its span overlaps the term; {g['term_not_found']} terms not "
         "extracted count as misses. Written by the same "
         "hands as the rules, so optimistic"],
        ["extraction throughput", f"{e['notes_per_second']:.1f} notes/s",
         f"{e['n_notes']} random MTSamples notes (mean {e['mean_chars']:,.0f} characters, "
         f"{e['entities_per_note']:.1f} entities per note), one process, rules only"],
        ["summary vs MTSamples description",
         f"ROUGE-1 {r['rouge1']:.3f}, ROUGE-2 {r['rouge2']:.3f}, ROUGE-L {r['rougeL']:.3f}",
         "2-sentence extractive summary against the one-line `description` (a rough reference), "
         "same notes"],
    ], cmd, [note])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    p.add_argument("--ner", nargs="*", default=list(NER_ROWS),
                   help="NER rows, each `iatros train` arguments: TASK [--model M] [--ensemble N] "
                        "[--epochs E]")
    p.add_argument("--runs", help="keep the NER run folders here (and reuse finished ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rescore", action="store_true",
                   help="score the runs on test again with this code instead of reading metrics.json")
    p.add_argument("--notes", type=int, default=500, help="MTSamples notes for throughput/ROUGE")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("IATROS_THREADS") or 2))
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))
    note = timing_note()

    ner = []
    for row in args.ner:
        ner.append(ner_result(row, args.data_root, args.runs, args.seed, args.rescore))
        r = ner[-1]
        print(f"# {row}: test F1 {fmt(r['f1'])} in {r['train_seconds']} s", flush=True)
    results = {
        "machine": f"{os.cpu_count()} CPU cores visible, torch threads {torch.get_num_threads()}",
        "ner": ner,
        "members": [{**member_result(r["run"], args.data_root), "row": r["row"]} for r in ner
                    if r.get("ensemble", 1) > 1],
        "specialty": specialty_result(args.data_root),
        "negation": negation_result(),
        "extraction": throughput_and_rouge(args.data_root, args.notes),
    }
    out = tables(results, args, note)
    for key, table in out.items():
        print(f"\n{key}\n\n{table.markdown()}")
    write_tables("nlp", out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))

if __name__ == "__main__":
    main()
