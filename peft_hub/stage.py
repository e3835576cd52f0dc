"""The skeleton every stage (``adapt``, ``pretrain``) shares: :func:`begin` (the run directory,
quiet libraries, the seed, the base model's path and tokenizer), then the stage's own data, model
and Trainer, then :func:`cost_metrics` (parameters, time, tokens, memory) and
:func:`peft_hub.rundir.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import models, rundir
from .recipes import Resolved
from .rundir import Echo


@dataclass
class Started:
    """What every stage starts from."""

    out: Path  # the run directory (created on rank 0)
    echo: Echo  # silent on ranks other than 0
    main: bool  # rank 0 of a multi-process run (or the only process)
    model_path: str  # the base model, resolved (alias -> directory)
    tokenizer: Any


def begin(resolved: Resolved, default_name: str, echo: Echo) -> Started:
    """Open the run directory, quiet the libraries, seed everything, load the base's tokenizer."""
    recipe = resolved.recipe
    out, echo, main = rundir.start(recipe.output, default_name, echo)
    models.quiet_libraries()
    import transformers

    transformers.set_seed(recipe.training.seed)
    model_path = models.resolve(recipe.model.name)
    return Started(out, echo, main, model_path, models.load_tokenizer(model_path, recipe.model.trust_remote_code))


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def cost_metrics(trainer: Any, result: Any, trainable: int, total: int) -> dict:
    """What a finished training cost: parameters, steps, seconds without evaluations and saves,
    real (non-padding) tokens and their rate, peak memory."""
    from .train import peak_memory_mb

    runtime = result.metrics["train_runtime"] - trainer.clock.excluded
    tokens = trainer.state.num_input_tokens_seen
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": round(100 * trainable / total, 4),
        "train_steps": result.global_step,
        "train_runtime_s": round(runtime, 2),
        "train_tokens": tokens,
        "train_tokens_per_s": round(tokens / runtime, 1) if runtime > 0 else None,
        "peak_memory_mb": peak_memory_mb(),
    }
