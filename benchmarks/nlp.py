"""Clinical NLP benchmark: NER test F1 beside published figures, MTSamples specialty macro-F1,
negation accuracy on our labelled sentences, ROUGE of summaries against MTSamples descriptions,
and extraction throughput on this machine.

NER protocol: train on train, stop on devel (entity F1), report exact-match entity F1 on test
with a 95% bootstrap CI over sentences (the IOB files carry no document ids). Pass run folders
already trained (`iatros train ner-ncbi-disease --data-root ../shared/data`) with --ncbi-run /
--bc5cdr-run, or --train to train them here.

    python benchmarks/nlp.py --data-root ../shared/data --ncbi-run RUN [RUN ...] --bc5cdr-run RUN
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NEGATION_SET = HERE / "data" / "negation_sentences.tsv"
PUBLISHED = {  # test entity F1 (%)
    "ner-ncbi-disease": {"BioBERT v1.1, PubMed-pretrained (Lee et al. 2020)": 89.7,
                         "BiLSTM-CRF without pretraining (approx., as quoted in issue 6)": 85.0},
    "ner-bc5cdr": {},  # BioBERT reports chemical and disease separately, not this combined set
}


LABELS = {"bilstm-crf": "BiLSTM-CRF + char-CNN, from scratch",
          "bilstm-crf-minilm": "BiLSTM-CRF + char-CNN + frozen general MiniLM"}


def ner_result(task: str, run: str | None, data_root: str, train: bool, epochs: int | None,
               ensemble: int = 1, model: str | None = None, rescore: bool = False) -> dict:
    from iatros import api

    if run is None:
        if not train:
            return {"task": task, "note": "no run given (pass --train or a run folder)"}
        run = str(api.train(task, data_root=data_root, epochs=epochs, register=False,
                            ensemble=ensemble, model=model))
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    status = json.loads((Path(run) / "status.json").read_text())
    test = metrics["splits"]["test"]
    if rescore:  # score the saved members again with this version's code (e.g. its ensemble vote)
        test = api.evaluate(run, split="test")["splits"]["test"]
    config = json.loads((Path(run) / "config.json").read_text())
    return {"task": task, "run": run, "f1": test["entity_f1"], "precision": test["entity_precision"],
            "recall": test["entity_recall"], "train_seconds": status.get("train_seconds"),
            "ensemble": int(config.get("ensemble") or 1), "epochs": config.get("epochs"),
            "model": config.get("model"),
            "ema_decay": (config.get("train") or {}).get("ema_decay")}


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
    from iatros.text_run import pad_tags
    from iatros.train.predictors import load_predictor, majority_spans

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
    return {"run": str(run), "test": metrics["splits"]["test"], "seconds": time.perf_counter() - t0}


def negation_result() -> dict:
    from iatros.nlp import extract_text

    rows = list(csv.DictReader(NEGATION_SET.open(), delimiter="\t"))
    correct, missing = 0, 0
    for r in rows:
        ents = [e for e in extract_text(r["sentence"])["entities"] if e["text"].lower() == r["term"]]
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("IATROS_DATA", "../shared/data"))
    p.add_argument("--ncbi-run", nargs="*", default=[], help="finished run folder(s), one row each")
    p.add_argument("--bc5cdr-run", nargs="*", default=[])
    p.add_argument("--model", help="with --train: the tagger (bilstm-crf or bilstm-crf-minilm)")
    p.add_argument("--rescore", action="store_true",
                   help="score given runs on test again with this code instead of reading metrics.json")
    p.add_argument("--members", action="store_true",
                   help="for given ensemble runs, also score each member alone and both votes")
    p.add_argument("--train", action="store_true", help="train the NER runs that are not given")
    p.add_argument("--epochs", type=int)
    p.add_argument("--ensemble", type=int, default=1,
                   help="with --train: N taggers (seeds 0..N-1) voting per token")
    p.add_argument("--notes", type=int, default=500, help="MTSamples notes for throughput/ROUGE")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(2)
    os.environ.setdefault("IATROS_HOME", tempfile.mkdtemp(prefix="iatros-bench-"))

    ner = [ner_result(t, run, args.data_root, args.train, args.epochs, args.ensemble, args.model,
                      args.rescore)
           for t, runs in (("ner-ncbi-disease", args.ncbi_run), ("ner-bc5cdr", args.bc5cdr_run))
           for run in (runs or [None])]
    results = {
        "machine": f"{os.cpu_count()} CPU cores visible, torch threads {torch.get_num_threads()}",
        "ner": ner,
        "members": [member_result(r["run"], args.data_root) for r in ner
                    if args.members and r.get("ensemble", 1) > 1],
        "specialty": specialty_result(args.data_root),
        "negation": negation_result(),
        "extraction": throughput_and_rouge(args.data_root, args.notes),
    }
    print(f"\nClinical NLP benchmark ({results['machine']})\n")
    print(f"{'task':<20} {'model':<58} {'test F1 %':>26}")
    for r in results["ner"]:
        if "f1" not in r:
            print(f"{r['task']:<20} {'ours: ' + r['note']:<58}")
            continue
        n = r["f1"]["n"]
        ours = "ours: " + LABELS.get(r["model"], str(r["model"])) + (
            f", {r['ensemble']} voting" if r.get("ensemble", 1) > 1 else "")
        print(f"{r['task']:<20} {ours:<58} {fmt(r['f1']):>26}"
              f"   P {fmt(r['precision'])}  R {fmt(r['recall'])}  n={n} sentences, "
              f"{r['f1'].get('n_entities')} entities, trained in {r.get('train_seconds')} s")
    for task in dict.fromkeys(r["task"] for r in results["ner"]):
        for name, value in PUBLISHED[task].items():
            if value is not None:
                print(f"{task:<20} {name:<58} {value:>26.1f}")
    for m in results["members"]:
        print(f"\nensemble {m['run']}: entity F1 % alone and voted (devel / test)")
        for name in m["val"]:
            print(f"  {name:<12} {m['val'][name]:5.1f} / {m['test'][name]:5.1f}")
    s = results["specialty"]["test"]
    print(f"\nmtsamples-specialty (9 specialties, tf-idf + logistic regression): macro-F1 {fmt(s['f1'])}, "
          f"accuracy {fmt(s['accuracy'])}, n={s['f1']['n']} test notes")
    g = results["negation"]
    print(f"negation: {g['correct']}/{g['n']} = {100 * g['accuracy']:.1f}% correct "
          f"({g['term_not_found']} target terms not extracted; {100 * g['negated_share']:.0f}% negated)")
    e = results["extraction"]
    print(f"extraction: {e['notes_per_second']:.1f} notes/s ({e['n_notes']} MTSamples notes, "
          f"mean {e['mean_chars']:.0f} chars, {e['entities_per_note']:.1f} entities/note, "
          f"{e['seconds']:.1f} s, 1 process)")
    r = e["rouge"]
    print(f"summary (2 sentences) vs MTSamples description: ROUGE-1 {r['rouge1']:.3f}, "
          f"ROUGE-2 {r['rouge2']:.3f}, ROUGE-L {r['rougeL']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
