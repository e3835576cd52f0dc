"""The PNGs: every run's curves (training loss and the dev metric by step) and ``peft-hub report``'s
comparison of runs. matplotlib draws into files only, never a window."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
