"""QA training speed and quality, side by side: peft-hub against a run_qa.py-style Trainer script.

    (a)  peft-hub run qa/squad_full (the CLI, in a subprocess): windows padded per batch,
         length-grouped batches, token-weighted loss, cheaper CPU dropout
    (b)  benchmarks/baselines/run_qa_plain.py: run_qa.py's recipe, windows padded to 384

Full fine-tuning of the offline MiniLM on the same first N training questions of SQuAD v1.1's dev
file (articles 1-36), one epoch, lr 1e-4, batch 16, windows of 384 with stride 128, seed 42; both
score the 4 dev articles (858 questions) with SQuAD's exact match and F1. (a) and (b) run *at the
same time*, one thread each, so that both see the same load on a shared machine; the ratio of
their real (non-padding) training tokens per second is the speed-up.

    .venv/bin/python benchmarks/speed_qa.py --samples 800
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "data" / "squad_v1" / "dev-v1.1.json"
sys.path.insert(0, str(Path(__file__).parent))
from speed_ner import side_by_side  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=800)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed_qa.json"))
    args = parser.parse_args()
    from peft_hub import models

    with tempfile.TemporaryDirectory() as tmp:
        b = side_by_side(["run", "qa/squad_full", f"data.max_train_samples={args.samples}", f"output.dir={tmp}/a", "--quiet"],
                         [str(ROOT / "benchmarks" / "baselines" / "run_qa_plain.py"), "--model", models.resolve("minilm"),
                          "--data", str(SQUAD), "--max-train-samples", str(args.samples), "--output", f"{tmp}/b"])
        a = json.loads(Path(f"{tmp}/a/metrics.json").read_text())
    rows = {
        "a peft-hub": {"seconds": a["train_runtime_s"], "real_tokens": a["train_tokens"], "steps": a["train_steps"],
                       "dev_exact_match": a["dev"]["exact_match"], "dev_f1": a["dev"]["f1"]},
        "b run_qa.py-style": {"seconds": b["train_runtime_s"], "real_tokens": b["real_tokens"], "steps": b["train_steps"],
                              "dev_exact_match": b["dev_exact_match"], "dev_f1": b["dev_f1"]},
    }
    for row in rows.values():
        row["tokens_per_s"] = row["real_tokens"] / row["seconds"]
    report = {"title": f"SQuAD full fine-tuning, {args.samples} training questions, concurrent, 1 thread each",
              "date": time.strftime("%Y-%m-%d"), "runs": rows,
              "ratio_a_b": rows["a peft-hub"]["tokens_per_s"] / rows["b run_qa.py-style"]["tokens_per_s"]}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print("| variant | steps | real tokens | train s | real tokens/s | dev EM | dev F1 |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['steps']} | {r['real_tokens']:,} | {r['seconds']:.0f} | {r['tokens_per_s']:,.0f} | "
              f"{r['dev_exact_match']:.3f} | {r['dev_f1']:.3f} |")
    print(f"a/b = {report['ratio_a_b']:.2f}")


if __name__ == "__main__":
    main()
