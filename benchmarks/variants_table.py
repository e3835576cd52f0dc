"""The table of benchmarks/variants.sh: per dataset and variant, the test score (mean and spread
over the seeds run), trainable %, training seconds and peak memory, plus the difference to plain LoRA.

    python benchmarks/variants_table.py runs/variants > benchmarks/results/variants.md
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main(root: Path) -> None:
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for metrics in sorted(root.glob("*/metrics.json")):
        match = re.fullmatch(r"(\w+)-(\w+)-s(\d+)", metrics.parent.name)
        if match:
            runs[match[1], match[2]].append(json.loads(metrics.read_text()))
    for data in sorted({d for d, _ in runs}):
        rows = {v: ms for (d, v), ms in runs.items() if d == data}
        metric = rows[next(iter(rows))][0]["primary_metric"]
        base = statistics.mean(m["test"][metric] for m in rows.get("lora", [])) if "lora" in rows else None
        print(f"\n### {data} (test {metric}, 1 epoch)\n")
        print(f"| variant | seeds | test {metric} | vs lora | trainable % | seconds | peak MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for variant, ms in sorted(rows.items(), key=lambda kv: -statistics.mean(m["test"][metric] for m in kv[1])):
            scores = [m["test"][metric] for m in ms]
            mean = statistics.mean(scores)
            spread = f" ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
            delta = f"{mean - base:+.4f}" if base is not None and variant != "lora" else ""
            print(f"| {variant} | {len(ms)} | {mean:.4f}{spread} | {delta} | {ms[0]['trainable_percent']:.2f} | "
                  f"{statistics.mean(m['train_runtime_s'] for m in ms):.0f} | {max(m.get('peak_memory_mb') or 0 for m in ms):,.0f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
