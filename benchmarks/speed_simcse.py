"""Unsupervised SimCSE training speed, side by side: peft-hub against a sentence-transformers-style
loop (MultipleNegativesRankingLoss with the same sentence as both columns).

    (a)  peft-hub pretrain --objective simcse (the CLI, in a subprocess): both dropout views in one
         forward pass, length-grouped batches, cheaper CPU dropout
    (b)  benchmarks/baselines/run_simcse_plain.py: one forward pass per column, random batches

Full fine-tuning of the offline MiniLM on the same first N sentences of WikiText-2 (split by
peft_hub.split_sentences, written to a file both read), 1 epoch, batch 64, 32 tokens, lr 3e-5,
temperature 0.05, mean pooling, seed 42; both are scored on STS-B test (Spearman of cosine
similarity). (a) and (b) run at the same time, one thread each, so that both see the same load;
the ratio of their training sentences per second is the speed-up.

    .venv/bin/python benchmarks/speed_simcse.py --sentences 3000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))
from speed_ner import ENV, PEFT_HUB, side_by_side  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed_simcse.json"))
    args = parser.parse_args()
    from peft_hub import models, split_sentences

    sentences = [s for line in (DATA / "wikitext2_raw" / "wiki.test.raw").read_text(encoding="utf-8").splitlines()
                 for s in split_sentences(line)]
    train, held = sentences[: args.sentences], sentences[args.sentences : args.sentences + 200]
    sts = DATA / "stsb" / "sts-test.csv"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
        (Path(tmp) / "held.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
        b = side_by_side(["pretrain", "--objective", "simcse", "--method", "full", "--data", f"{tmp}/train.txt",
                          "--validation", f"{tmp}/held.txt", "--block-size", "32", "--batch-size", "64", "--lr", "3e-5",
                          "--epochs", "1", "--output", f"{tmp}/a", "--quiet", "objective.options.pooling=mean",
                          "training.early_stopping_patience=null", "training.report_to=[]"],
                         [str(ROOT / "benchmarks" / "baselines" / "run_simcse_plain.py"), "--model", models.resolve("minilm"),
                          "--sentences", f"{tmp}/train.txt", "--sts", str(sts)])
        a = json.loads(Path(f"{tmp}/a/metrics.json").read_text())
        scored = subprocess.run([PEFT_HUB, "evaluate", f"{tmp}/a", "--sts", str(sts), "--json"],
                                env=ENV, capture_output=True, text=True, check=True)
        a_sts = json.loads(scored.stdout)["sts"]["spearman"]
    rows = {
        "a peft-hub": {"seconds": a["train_runtime_s"], "sentences": len(train), "steps": a["train_steps"], "sts_test_spearman": a_sts},
        "b sentence-transformers-style": {"seconds": b["train_runtime_s"], "sentences": b["sentences"], "steps": b["steps"],
                                          "sts_test_spearman": b["sts_test_spearman"]},
    }
    for row in rows.values():
        row["sentences_per_s"] = row["sentences"] / row["seconds"]
    report = {"title": f"Unsupervised SimCSE, {len(train)} WikiText-2 sentences, full fine-tuning, concurrent, 1 thread each",
              "date": time.strftime("%Y-%m-%d"), "runs": rows,
              "ratio_a_b": rows["a peft-hub"]["sentences_per_s"] / rows["b sentence-transformers-style"]["sentences_per_s"]}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print("| variant | steps | train s | sentences/s | STS-B test Spearman |\n|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['steps']} | {r['seconds']:.0f} | {r['sentences_per_s']:.1f} | {r['sts_test_spearman']:.4f} |")
    print(f"a/b = {report['ratio_a_b']:.2f}")


if __name__ == "__main__":
    main()
