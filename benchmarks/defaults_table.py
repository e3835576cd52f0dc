"""Markdown tables of benchmarks/defaults_check.sh: test scores per dataset and method against the
linear-probe floor, the old head rate against the new, and LoRA against full fine-tuning at the
recipes' own length.

    .venv/bin/python benchmarks/defaults_table.py runs/defaults > benchmarks/results/defaults_check.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from peft_hub import guard

METHODS = ["lora", "adapter", "ia3", "prefix", "full"]


def runs(folder: Path) -> dict[tuple[str, str], dict]:
    """(dataset, method) -> metrics.json of every finished run in ``folder``."""
    found = {}
    for run in sorted(folder.glob("*")) if folder.is_dir() else []:
        if (run / "run.json").exists():
            dataset, method = run.name.rsplit("-", 1)
            found[dataset, method] = json.loads((run / "metrics.json").read_text())
    return found


def cell(metrics: dict | None, key: str, floor: float | None = None) -> str:
    if not metrics or key not in metrics.get("test", {}):
        return "-"
    value = metrics["test"][key]
    text = f"{value:.3f}"
    if guard.warnings(metrics, metrics["primary_metric"]):  # today's guard, whenever the run was made
        text += " (!)"
    if floor is not None and value <= floor:
        text = f"**{text}** < probe"
    return text


def main(out: str) -> None:
    root = Path(out)
    probes = {}
    if (root / "probe.jsonl").exists():
        for line in (root / "probe.jsonl").read_text().splitlines():
            row = json.loads(line)
            probes[row["name"]] = row
    budget, before, long = runs(root / "budget"), runs(root / "before"), runs(root / "long")
    datasets = list(dict.fromkeys([d for d, _ in budget] + list(probes)))
    metric_of = {d: next((m["primary_metric"] for (dd, _), m in {**budget, **long}.items() if dd == d), probes.get(d, {}).get("metric"))
                 for d in datasets}

    print("# Defaults across datasets (`bash benchmarks/defaults_check.sh`)\n")
    print("Test scores of the task's primary metric (macro-F1 for classification, entity F1 for NER). "
          "(!) marks a run the collapse guard flagged; **bold** < probe: at or below the linear-probe floor.\n")
    for key, title in (("primary", "1 epoch (small budget), primary metric"), ("accuracy", "1 epoch (small budget), accuracy (classification)")):
        print(f"## {title}\n")
        print("| dataset | metric | probe | " + " | ".join(METHODS) + " |")
        print("|---|---|---:|" + "---:|" * len(METHODS))
        for d in datasets:
            name = metric_of[d] if key == "primary" else "accuracy"
            if key == "accuracy" and probes.get(d, {}).get("task") != "classify":
                continue  # token accuracy of NER is mostly O: not a score to compare
            floor = (probes.get(d, {}).get("test") or {}).get(name)
            cells = [cell(budget.get((d, m)), name, floor) for m in METHODS]
            print(f"| {d} | {name} | {floor:.3f} | " if floor is not None else f"| {d} | {name} | - | ", end="")
            print(" | ".join(cells) + " |")
        print()

    if before:
        print("## Before and after, 1 epoch: lora and adapter with the head at the method's own rate (before) and "
              "at the new default; prefix at its old rate 1e-2 (before) and 3e-2\n")
        print("| dataset | metric | lora before | lora after | adapter before | adapter after | prefix before | prefix after |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for d in datasets:
            name = metric_of[d]
            print(f"| {d} | {name} | " + " | ".join(cell(src.get((d, m)), name) for m in ("lora", "adapter", "prefix") for src in (before, budget)) + " |")
        print()

    if long:
        print("## The recipes' own length (3 epochs): LoRA against full fine-tuning\n")
        print("| dataset | metric | lora | full | full - lora (points) |")
        print("|---|---|---:|---:|---:|")
        for d in datasets:
            lora, full = long.get((d, "lora")), long.get((d, "full"))
            if not (lora or full):
                continue
            names = [metric_of[d]] + (["accuracy"] if probes.get(d, {}).get("task") == "classify" else [])
            for name in names:
                gap = f"{100 * (full['test'][name] - lora['test'][name]):+.1f}" if lora and full else "-"
                print(f"| {d} | {name} | {cell(lora, name)} | {cell(full, name)} | {gap} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/defaults")
