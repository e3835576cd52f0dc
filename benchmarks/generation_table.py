"""The table of benchmarks/generation.sh: dev and test scores of each run, and for SciTLDR the
lead-sentence baseline (each abstract's first sentence as its summary, scored as the runs are).

    .venv/bin/python benchmarks/generation_table.py runs/generation [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MEASURES = {"multi30k": ("bleu", "chrf"), "multi30k-en-de": ("bleu", "chrf"), "scitldr": ("rouge1", "rouge2", "rougeL")}


def lead_baseline(data: Path) -> dict[str, dict[str, float]]:
    """ROUGE of the first sentence of each abstract, against every reference, per split."""
    from peft_hub import registry

    task = registry.get_task("summarize")
    scores = {}
    for split in ("dev", "test"):
        rows = [json.loads(line) for line in (data / "scitldr" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        scores[split] = task.score([r["source"][0] for r in rows], [r["target"] for r in rows], None, task.Options())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    for data, measures in MEASURES.items():
        # a run is <data>-<decoder>-<method>
        runs = sorted(p for p in args.runs.glob(f"{data}-*/metrics.json") if p.parent.name.rsplit("-", 2)[0] == data)
        if not runs:
            continue
        print(f"\n### {data}\n")
        print("| run | steps | trainable % | " + " | ".join(f"dev {m}" for m in measures) + " | "
              + " | ".join(f"test {m}" for m in measures) + " | train s |")
        print("|---|---:|---:|" + "---:|" * (2 * len(measures)) + "---:|")
        for path in runs:
            m = json.loads(path.read_text())
            cells = [f"{m.get(split, {}).get(k, float('nan')):.4g}" for split in ("dev", "test") for k in measures]
            print(f"| {path.parent.name.removeprefix(data + '-')} | {m['train_steps']} | {m['trainable_percent']:.2f} | "
                  + " | ".join(cells) + f" | {m['train_runtime_s']:.0f} |")
        if data == "scitldr":
            lead = lead_baseline(args.data)
            print("| lead sentence (no training) | 0 | | " + " | ".join(f"{lead[s][k]:.4g}" for s in ("dev", "test") for k in measures) + " | |")


if __name__ == "__main__":
    main()
