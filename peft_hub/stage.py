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
from .anatomy import adapted, anatomy, leaves_attention_untouched, summary
from .errors import ModelError
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


def begin(resolved: Resolved, echo: Echo) -> Started:
    """Open the run directory, quiet the libraries, seed everything, load the base's tokenizer."""
    recipe = resolved.recipe
    out, echo, main = rundir.start(recipe.output, resolved.run_name, echo)
    models.quiet_libraries()
    import transformers

    transformers.set_seed(recipe.training.seed)
    model_path = models.resolve(recipe.model.name)
    config = transformers.AutoConfig.from_pretrained(model_path, trust_remote_code=recipe.model.trust_remote_code)
    refusal = resolved.method.model_refusal(config, resolved.method_options)
    if refusal:  # before any data is read
        raise ModelError(f"The method {resolved.method.name!r} cannot adapt {model_path}: {refusal}.")
    return Started(out, echo, main, model_path, models.load_tokenizer(model_path, recipe.model.trust_remote_code))


def apply_method(resolved: Resolved, model: Any, head: Any, echo: Echo) -> tuple[Any, dict | None]:
    """The method applied to ``model`` (``head``: the task or objective), and where it went: which
    roles of which encoder layers train (:func:`peft_hub.anatomy.adapted`, said in the log and kept
    in metrics.json); None for a family whose layers cannot be read (a method that works by name
    adapted it)."""
    method, options = resolved.method, resolved.method_options
    try:
        before = anatomy(model, head.head_modules(model))
    except ModelError:
        before = None
    model = method.apply(model, options, head)
    if before is None:
        echo(f"Method {method.name}: the encoder layers of {type(model).__name__} cannot be read, so where it went is not reported.")
        return model, None
    report = adapted(model, before)
    echo(f"Adapted: {summary(report)}")
    if leaves_attention_untouched(report):
        echo(f"WARNING: {method.name} adapts no attention layer of this model (only {', '.join(report['modules']) or 'nothing'}).")
    return model, report


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
