"""Finished runs, seen side by side: a table (markdown or JSON), a comparison PNG, and the curves
PNG that every run directory gets.

    peft-hub report runs/a runs/b --png compare.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import RunDirError

COLUMNS = [  # (key, header, format)
    ("run", "run", "{}"),
    ("task", "task", "{}"),
    ("method", "method", "{}"),
    ("learning_rate", "lr", "{:g}"),
    ("trainable_percent", "trainable %", "{:.3f}"),
    ("dev", "dev", "{:.4f}"),
    ("test", "test", "{:.4f}"),
    ("train_runtime_s", "train s", "{:,.1f}"),
    ("train_tokens_per_s", "tokens/s", "{:,.0f}"),
    ("peak_memory_mb", "peak MiB", "{:,.0f}"),
]


def primary_metric(metrics: dict) -> str:
    """The metric a run was selected by (recorded since metrics.json has it; else f1 or accuracy)."""
    if "primary_metric" in metrics:
        return metrics["primary_metric"]
    return "f1" if "f1" in metrics.get("dev", metrics.get("test", {})) else "accuracy"


def load(run_dir: str | Path) -> dict[str, Any]:
    """One row: what ran and how it scored (the task's or the objective's primary metric)."""
    from .locations import locate

    run = locate(run_dir)
    try:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run} holds no finished run (no run.json or metrics.json). Pass finished run directories.") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{run}: run.json or metrics.json is damaged ({exc}). Rerun the run.") from None
    recipe = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8")) if (run / "recipe.yaml").exists() else {}
    row: dict[str, Any] = {
        "run": str(run),
        "kind": info.get("kind", "adapt"),
        "task": info.get("task") or info.get("objective"),
        "method": info.get("method"),
        "learning_rate": (recipe.get("training") or {}).get("learning_rate"),
        **{k: metrics.get(k) for k in ("trainable_params", "trainable_percent", "train_runtime_s", "train_tokens_per_s", "peak_memory_mb", "train_steps")},
    }
    if row["kind"] == "pretrain":
        row["metric"] = metrics.get("primary_metric", "loss")
        row["dev"], row["test"] = (metrics.get("heldout_after") or {}).get(row["metric"]), None
        row["trainable_percent"] = row["trainable_percent"] or 100 * metrics["trainable_params"] / metrics["total_params"]
    else:
        name = primary_metric(metrics)
        row["metric"] = name
        row["dev"] = metrics.get("dev", {}).get(name)
        row["test"] = metrics.get("test", {}).get(name)
    row["warnings"] = metrics.get("warnings", [])
    row["history"] = metrics.get("history", [])
    return row


def markdown(rows: list[dict]) -> str:
    metric = {r["metric"] for r in rows}
    header = [h if key not in ("dev", "test") else f"{h} {'/'.join(sorted(metric))}" for key, h, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS]
        if row.get("warnings"):
            cells[0] += " (!)"
        lines.append("| " + " | ".join(cells) + " |")
    if any(row.get("warnings") for row in rows):
        lines.append("\n(!) the collapse guard warned: a score at the level of always predicting the most common "
                     "label, or a flat training loss (see `warnings` in the run's metrics.json).")
    return "\n".join(lines)


def as_json(rows: list[dict]) -> str:
    return json.dumps([{k: v for k, v in r.items() if k != "history"} for r in rows], indent=2)
