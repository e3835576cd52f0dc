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
    from .hub import locate

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def comparison_png(rows: list[dict], path: str | Path) -> Path:
    """Score (test, else dev) against trainable % (log scale); point area grows with training time.
    Runs scored by another metric than the most common one (e.g. pretraining perplexity among
    NER runs) are left out of the plot."""
    metrics = [r["metric"] for r in rows]
    rows = [r for r in rows if r["metric"] == max(set(metrics), key=metrics.count)]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    seconds = [r.get("train_runtime_s") or 0 for r in rows]
    biggest = max(seconds) or 1
    for row, s in zip(rows, seconds):
        score = row["test"] if row["test"] is not None else row["dev"]
        if score is None or not row.get("trainable_percent"):
            continue
        ax.scatter(row["trainable_percent"], score, s=40 + 600 * s / biggest, alpha=0.6)
        ax.annotate(f"{row['method']} ({Path(row['run']).name})", (row["trainable_percent"], score),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    metric = rows[0]["metric"]
    split = "test" if any(r["test"] is not None for r in rows) else "dev"
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (%)")
    ax.set_ylabel(f"{split} {metric}")
    ax.set_title(f"{split} {metric} vs trainable parameters (point size: training time, max {biggest:,.0f} s)", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def curves_png(history: list[dict], path: str | Path, metric: str) -> Path:
    """Training loss and the dev metric (or held-out loss) against the optimizer step."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    train = [(e["step"], e["loss"]) for e in history if "loss" in e and "step" in e]
    dev = [(e["step"], e[f"eval_{metric}"]) for e in history if f"eval_{metric}" in e and "step" in e]
    for ax, points, title in ((left, train, "training loss"), (right, dev, f"dev {metric}")):
        if points:
            ax.plot(*zip(*points), marker="o" if len(points) < 30 else None)
        else:
            ax.text(0.5, 0.5, "not logged in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        tmp.replace(path)  # atomic: never half a PNG
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
