"""Score finished NER runs' dev and test splits under both decodings (issue 28): each word's arg-max
tag, and the best valid IOB2 sequence (the NER task's ``decoding=constrained``). One forward pass per
split; the scores go to ``<run>/decoding.json`` (runs that have one are skipped), which
benchmarks/ner_gap_table.py reads with ``--decoding``.

    .venv/bin/python benchmarks/ner_decoding.py runs/ner-gap/*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqeval.metrics import f1_score, precision_score, recall_score

from peft_hub.finished import load_run
from peft_hub_plugins.ner import decode, transitions


def score(run_dir: Path) -> dict:
    run = load_run(run_dir, expect_task="ner")
    task, options, recipe = run.resolved.task, run.resolved.task_options, run.resolved.recipe
    splits = task.read_data(recipe.data, options)
    rules = transitions(run.labels)
    out = {}
    for split in ("validation", "test"):
        sentences = splits.get(split, [])[: recipe.data.max_eval_samples or None]
        log_probs = task.word_log_probs(run.model, run.tokenizer, [s.tokens for s in sentences], run.labels, options)
        gold = [s.tags for s in sentences]
        for name, how in (("argmax", None), ("constrained", rules)):
            pred = [[run.labels[i] for i in decode(lp, how)] for lp in log_probs]
            out.setdefault(name, {})[split] = {"precision": float(precision_score(gold, pred)), "recall": float(recall_score(gold, pred)),
                                               "f1": float(f1_score(gold, pred))}
    return out


if __name__ == "__main__":
    for directory in map(Path, sys.argv[1:]):
        target = directory / "decoding.json"
        if target.exists() or not (directory / "run.json").exists():
            continue
        scores = score(directory)
        target.write_text(json.dumps(scores, indent=1))
        print(directory, {k: round(v["validation"]["f1"], 4) for k, v in scores.items()}, flush=True)
