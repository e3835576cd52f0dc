"""The table of benchmarks/ner_gap.sh: per dataset, epochs and candidate, dev and test F1 (mean and
spread over the seeds run), the gap to full fine-tuning on each, trainable % and training seconds.
Candidates are chosen by dev; test is shown for the record. With ``--decoding argmax|constrained``
the F1 comes from each run's ``decoding.json`` (benchmarks/ner_decoding.py) instead of the run's own
metrics (scored with the decoding the run was made with).

    python benchmarks/ner_gap_table.py runs/ner-gap [--decoding constrained] > benchmarks/results/ner_gap.md
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def summary(scores: list[float]) -> str:
    spread = f" ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
    return f"{statistics.mean(scores):.4f}{spread}"


def main(root: Path, decoding: str | None = None) -> None:
    runs: dict[tuple[str, int, str], list[dict]] = defaultdict(list)
    for metrics in sorted(root.glob("*/metrics.json")):
        match = re.fullmatch(r"(\w+)-([\w.+-]+)-e(\d+)-s(\d+)", metrics.parent.name)
        if not match:
            continue
        scores = json.loads(metrics.read_text())
        if decoding:
            rescored = metrics.parent / "decoding.json"
            if not rescored.exists():
                print(f"{metrics.parent}: no decoding.json (benchmarks/ner_decoding.py), left out", file=sys.stderr)
                continue
            chosen = json.loads(rescored.read_text())[decoding]
            scores["dev"], scores["test"] = chosen["validation"], chosen["test"]
        runs[match[1], int(match[3]), match[2]].append(scores)
    for data, epochs in sorted({(d, e) for d, e, _ in runs}):
        rows = {c: ms for (d, e, c), ms in runs.items() if (d, e) == (data, epochs)}
        full = {split: statistics.mean(m[split]["f1"] for m in rows["full"]) for split in ("dev", "test")} if "full" in rows else None
        print(f"\n### {data}, {epochs} epoch{'s' if epochs > 1 else ''}\n")
        print("| candidate | seeds | dev F1 | gap to full (dev) | test F1 | gap to full (test) | trainable % | seconds |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for candidate, ms in sorted(rows.items(), key=lambda kv: -statistics.mean(m["dev"]["f1"] for m in kv[1])):
            dev, test = ([m[split]["f1"] for m in ms] for split in ("dev", "test"))
            gaps = [f"{full[split] - statistics.mean(s):.4f}" if full and candidate != "full" else "" for split, s in (("dev", dev), ("test", test))]
            print(f"| {candidate} | {len(ms)} | {summary(dev)} | {gaps[0]} | {summary(test)} | {gaps[1]} | "
                  f"{ms[0]['trainable_percent']:.2f} | {statistics.mean(m['train_runtime_s'] for m in ms):.0f} |")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--decoding", choices=("argmax", "constrained"))
    args = parser.parse_args()
    main(args.root, args.decoding)
