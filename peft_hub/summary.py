"""What the end of a run prints: the task's summary metrics per split, its notes, the cost and
warnings (``adapt``), or the held-out score before and after (``pretrain``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pretrain_summary(out: Path, metrics: dict, objective: Any) -> str:
    return "\n".join([
        f"\nModel saved to {out}",
        f"held-out {metrics['primary_metric']} {metrics['heldout_before'][metrics['primary_metric']]:.4g} -> "
        f"{metrics['heldout_after'][metrics['primary_metric']]:.4g} ({metrics['heldout_examples']:,} held-out examples)",
        f"{metrics['train_steps']} steps in {metrics['train_runtime_s']:.1f} s, {metrics['train_tokens_per_s'] or 0:,.0f} tokens/s",
        *(f"Next: {step.format(out=out)}" for step in objective.next_steps),
    ])


def adapt_summary(out: Path, metrics: dict, task: Any) -> str:
    """The end of an ``adapt`` run: the task's summary metrics per split, its notes, cost, warnings."""
    lines = [f"\nRun saved to {out}", ""]
    keys = [k for k in metrics.get("summary_metrics") or [metrics.get("primary_metric", "f1")]
            if any(k in metrics.get(s, {}) for s in ("dev", "test"))]
    widths = [max(12, len(k) + 2) for k in keys]
    lines.append(f"{'split':<6}" + "".join(f"{k:>{w}}" for k, w in zip(keys, widths)))
    for split in ("dev", "test"):
        if split in metrics:
            lines.append(f"{split:<6}" + "".join(f"{metrics[split].get(k, float('nan')):>{w}.4f}" for k, w in zip(keys, widths)))
    last = "test" if "test" in metrics else "dev"
    lines += [f"{note} ({last})" for note in task.score_notes(metrics.get(last, {}))]
    lines.append(
        f"trainable {metrics['trainable_params']:,} of {metrics['total_params']:,} parameters ({metrics['trainable_percent']:.2f}%); "
        f"{metrics['train_steps']} steps in {metrics['train_runtime_s']:.1f} s, {metrics['train_tokens_per_s'] or 0:,.0f} tokens/s"
    )
    lines += [f"WARNING: {w}" for w in metrics.get("warnings", [])]
    example = " ".join(f'"{field}"' for field in task.input_fields)
    lines.append(f"Next: peft-hub predict {out} {example}   |   peft-hub evaluate {out} --data DIR")
    return "\n".join(lines)
