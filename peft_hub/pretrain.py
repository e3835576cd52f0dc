"""The ``pretrain`` flow: unlabelled text -> blocks -> model with its pretraining head (+ method)
-> Trainer -> a model directory that ``peft-hub adapt --model`` takes.

The output directory holds a plain transformers model (``save_pretrained``; a method such as LoRA
is merged into the encoder first) and its tokenizer, plus ``metrics.json`` with the objective's
held-out scores before and after training (masked LM: perplexity), ``recipe.yaml``, ``curves.png``,
TensorBoard events and ``run.json`` (which records the objective: ``adapt --model`` on this
directory never takes its pretraining head for a task head).
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import models, rundir
from .errors import DataError, PeftHubError
from .progress import track
from .recipes import Resolved
from .rundir import Echo
from .stage import apply_method, begin, cost_metrics, count_parameters
from .text import BlockBuilder, build_blocks, documents, hold_out, streaming_blocks, text_files

#: with streaming and no validation file, held-out documents come from this many first documents
STREAM_HOLDOUT_WINDOW = 20_000


def _head_warmup(fresh_params: set[str], steps: int):
    """While the new head warms up, only the head trains. The rest of the model is frozen, so no
    backward pass runs through the encoder (60 head-only MiniLM steps ran 2.3x faster than with
    the encoder's gradients computed and dropped). Under DDP, whose gradient buckets were fixed
    when it wrapped the model, the encoder's gradients are computed and dropped instead."""
    from transformers import TrainerCallback

    from .train import matching_suffix

    class HeadWarmup(TrainerCallback):
        encoder: tuple | list = ()  # the weights held still: every trainable one outside the fresh head

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step >= steps or model is None:
                return
            self.encoder = [p for n, p in model.named_parameters()
                            if p.requires_grad and matching_suffix(n, fresh_params) is None]
            if len(self.encoder) == sum(p.requires_grad for p in model.parameters()):
                self.encoder = []  # the method leaves none of the fresh head trainable: nothing to warm up
            for parameter in self.encoder if args.world_size == 1 else ():
                parameter.requires_grad_(False)

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            if state.global_step < steps and args.world_size > 1:
                for parameter in self.encoder:
                    parameter.grad = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= steps and self.encoder:
                for parameter in self.encoder:
                    parameter.requires_grad_(True)
                self.encoder = []

    return HeadWarmup()


def _corpus(resolved: Resolved, echo: Echo) -> tuple[Callable[[], Any], list[str]]:
    """(a function returning the training documents afresh, the held-out documents)."""
    d = resolved.recipe.data
    read = lambda sources: documents(sources, d.format, d.text_field, d.paragraphs, d.encoding)  # noqa: E731
    train_sources: list[str] = []
    validation_sources: list[str] = [d.validation] if d.validation else []
    for path in d.paths:
        files = text_files(path) if Path(path).exists() else {"train": [path]}
        train_sources += [str(p) for p in files["train"]]
        if not d.validation and "validation" in files:
            validation_sources += [str(p) for p in files["validation"]]
    if validation_sources:
        echo(f"Held-out text: {', '.join(validation_sources)}")
        return (lambda: read(train_sources)), list(read(validation_sources))
    if d.streaming:  # held-out documents come from a first window; the stream skips the same ones
        window, held = hold_out(itertools.islice(read(train_sources), STREAM_HOLDOUT_WINDOW), d.validation_split)
        for _ in window:  # reading the window fills `held`
            pass
        make_train = lambda: hold_out(read(train_sources), d.validation_split)[0]  # noqa: E731
    else:  # one pass over the corpus splits it
        train_iter, held = hold_out(read(train_sources), d.validation_split)
        train_docs = list(train_iter)
        if not train_docs and not held:
            raise DataError(f"No text in {', '.join(train_sources)}: every line is empty. Point --data at the corpus.")
        make_train = lambda: iter(train_docs)  # noqa: E731
    echo(f"Held-out text: {len(held)} documents (every {max(2, round(1 / d.validation_split))}th)")
    return make_train, held


def _examples(resolved: Resolved, tokenizer: Any, echo: Echo, quiet: bool) -> tuple[Any, list[dict]]:
    """(training dataset, held-out examples before the objective fixes them): the objective's own
    records, or the text cut into its input unit and turned into its examples."""
    from .train import FeatureDataset

    objective, options, d, seed = resolved.objective, resolved.objective_options, resolved.recipe.data, resolved.recipe.training.seed
    records = objective.read_data(d, tokenizer, options)
    if records is not None:
        train_records, held_records = records
        if not train_records or not held_records:
            raise DataError(f"Objective {objective.name!r} found {len(train_records)} training and {len(held_records)} held-out "
                            f"examples in {d.path or d.train}; it needs both.")
        echo(f"Training examples: {len(train_records):,}; held out: {len(held_records):,}")
        return FeatureDataset(train_records[: d.max_train_samples]), held_records[: d.max_eval_samples]
    unit = "documents" if d.line_by_line and objective.input_unit == "blocks" else objective.input_unit
    block_args = dict(block_size=d.block_size, unit=unit, word_ids=objective.needs_word_ids)
    own_examples = objective.shapes_examples()
    train_docs, held_docs = _corpus(resolved, echo)
    if not held_docs:
        raise DataError("No held-out text: give data.validation=FILE or a larger corpus (validation_split).")
    if d.streaming:
        if own_examples:
            raise DataError(f"Objective {objective.name!r} builds its examples from the whole corpus, which cannot be "
                            "streamed; leave data.streaming off.")
        echo("Training text: streamed (read and tokenized lazily)")
        train: Any = streaming_blocks(train_docs, block_args, tokenizer)
    else:
        builder = BlockBuilder(tokenizer, **block_args)
        docs = track(train_docs(), "Tokenizing text", quiet=quiet, unit="documents")
        units = list(build_blocks(docs, builder, limit=None if own_examples else d.max_train_samples))
        train = FeatureDataset(objective.build_examples(units, tokenizer, options, seed, d.block_size)[: d.max_train_samples])
        if not len(train):
            raise DataError(f"No training {unit} found in {', '.join(d.paths)}"
                            + (f" ({len(units)} {unit}, but no {objective.name} examples from them)." if units else "."))
        echo(f"Training text: {len(units):,} {unit} of up to {d.block_size} tokens"
             + (f" -> {len(train):,} {objective.name} examples" if own_examples else "")
             + f" ({train.num_tokens():,} tokens)" + (f"; {builder.truncated} {unit} truncated" if builder.truncated else ""))
    held_units = list(build_blocks(held_docs, BlockBuilder(tokenizer, **block_args), limit=None if own_examples else d.max_eval_samples))
    held = objective.build_examples(held_units, tokenizer, options, seed + 1, d.block_size)[: d.max_eval_samples]
    if not held:
        raise DataError(f"No held-out {objective.name} examples from {len(held_units)} held-out {unit}: "
                        "give data.validation=FILE with more text, or a larger data.validation_split.")
    return train, held


def run(resolved: Resolved, *, quiet: bool = False, echo: Echo = print) -> tuple[Path, dict]:
    """Continue pretraining a model on text; returns the output directory and its metrics."""
    recipe, objective, method = resolved.recipe, resolved.objective, resolved.method
    d, t = recipe.data, recipe.training
    from .train import FeatureDataset, build_trainer, drop_own_checkpoints, train_resumably

    started = begin(resolved, echo)
    out, echo, main, model_path, tokenizer = started.out, started.echo, started.main, started.model_path, started.tokenizer
    if d.block_size > tokenizer.model_max_length:
        raise DataError(f"data.block_size={d.block_size} is more than the {tokenizer.model_max_length} positions of "
                        f"{model_path}. Use --block-size {tokenizer.model_max_length} or less.")
    options = resolved.objective_options
    if t.batch_size < objective.min_batch_size:
        raise DataError(f"Objective {objective.name!r} needs at least {objective.min_batch_size} examples per batch "
                        f"(training.batch_size is {t.batch_size}). Use --batch-size {max(objective.min_batch_size, 16)}.")
    train, held = _examples(resolved, tokenizer, echo, quiet)
    eval_features = FeatureDataset(objective.heldout(held, tokenizer, options, seed=t.seed + 1))
    metric = objective.primary_metric_for(options)

    quant = recipe.model.quantization
    model, fresh = objective.build_model(model_path, trust_remote_code=recipe.model.trust_remote_code,
                                         **models.quantization_kwargs(quant, objective.keep_full_precision))
    models.check_vocab(len(tokenizer), model, model_path)
    model = models.prepare_quantized(model, quant)
    callbacks, head_rates = [], {}
    if fresh:
        head_lr = t.head_learning_rate or 10 * resolved.learning_rate
        echo(f"{model_path} has no pretraining head: {len(fresh)} head weights start fresh "
             f"({', '.join(fresh[:3])}{' ...' if len(fresh) > 3 else ''}), at learning rate {head_lr:g}. "
             f"Only the head trains for the first {t.head_warmup_steps} steps.")
        callbacks.append(_head_warmup(set(fresh), t.head_warmup_steps))
        head_rates = dict.fromkeys(fresh, head_lr)
    def evaluate(model: Any) -> dict[str, float]:
        scores = objective.evaluate(model, eval_features.features, tokenizer, options, t.eval_batch_size)
        if metric not in scores:
            raise PeftHubError(f"Objective {objective.name!r} declares primary_metric={metric!r}, but its evaluate() "
                               f"returned only {sorted(scores)}. Fix the objective plugin.")
        return scores

    before = evaluate(model)
    echo(f"Held-out {metric} before training: {before[metric]:.4g} ({len(eval_features)} examples; "
         + ", ".join(f"{k} {v:.4g}" for k, v in before.items() if k != metric) + ")")

    model, placed = apply_method(resolved, model, objective, echo)
    trainable, total = count_parameters(model)
    echo(f"Method {method.name}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%); learning rate {resolved.learning_rate:g}")

    from transformers import EarlyStoppingCallback

    if t.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))

    total_steps = t.max_steps or math.ceil(len(train) / t.batch_size * t.epochs)
    trainer = build_trainer(
        t, resolved.learning_rate, model, tokenizer, train, eval_features, out,
        collator=objective.collator(tokenizer, options), metric=metric, greater_is_better=objective.greater_is_better_for(options),
        eval_steps=t.eval_steps or max(1, total_steps // 5), quiet=quiet, callbacks=tuple(callbacks),
        batch_transform=objective.prepare_training(model, options), learning_rates=head_rates, own_evaluation=evaluate,
    )
    result = train_resumably(trainer, recipe.output.resume, out, echo)
    model = trainer.model
    after = evaluate(model)
    echo(f"Held-out {metric} after training: {after[metric]:.4g}")

    if not main:
        drop_own_checkpoints(trainer, out)
        return out, {}
    if quant != "none":  # never merge into 8-bit/4-bit weights: reload the base in full precision
        method.save(model, out / "method")
        base, _ = objective.build_model(model_path, trust_remote_code=recipe.model.trust_remote_code)
        model = method.load(base, out / "method", resolved.method_options, objective)
        shutil.rmtree(out / "method")
    merged = method.merge(model)
    merged.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    metrics = {
        "primary_metric": metric,
        "greater_is_better": objective.greater_is_better_for(options),
        "heldout_before": before,
        "heldout_after": after,
        "heldout_examples": len(eval_features),
        "fresh_head_weights": fresh,
        "quantization": quant,
        **cost_metrics(trainer, result, trainable, total),
        "adapted": placed,
        "history": trainer.state.log_history,
    }
    pooling = objective.sentence_pooling(options)
    rundir.finish(out, resolved, metrics, {"objective": objective.name, "method": method.name, "base_model": model_path,
                                           **({"pooling": pooling} if pooling else {})}, curves_metric=metric)
    return out, metrics
