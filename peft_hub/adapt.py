"""The ``adapt`` flow: recipe -> data -> model + method -> Trainer -> run directory.

A run directory holds::

    adapter/          the method's weights and the task head (safetensors)
    tokenizer/        the tokenizer
    labels.json       the label names, in model output order
    recipe.yaml       the fully resolved recipe
    metrics.json      dev/test scores, parameter counts, speed, peak memory, per-epoch history
    curves.png        training loss and the dev metric by step
    tensorboard/      TensorBoard event files
    run.json          written last: marks the run complete and records the base model
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import guard, models, rundir
from .errors import DataError, RunDirError
from .progress import track
from .recipes import DataConfig, Resolved
from .rundir import Echo
from .finished import LoadedRun, load_run
from .stage import apply_method, begin, cost_metrics, count_parameters
from .tasks import build_model, prepare_tokenizer


def data_config_or_sample(resolved: Resolved, echo: Echo) -> DataConfig:
    data = resolved.recipe.data
    if data.path is None and data.train is None:
        sample = resolved.task.sample_data()
        echo(f"No --data given: training on the small sample built into the {resolved.task.name!r} task ({sample}).")
        return dataclasses.replace(data, path=str(sample))
    return data


def hold_out_dev(splits: dict[str, list], share: float, seed: int, echo: Echo) -> dict[str, list]:
    """Carve a dev split out of the training examples when the data has none (``share`` of them,
    chosen at random with ``seed``), so the best epoch is kept and collapse is noticed."""
    if "validation" in splits or not share or len(splits.get("train", [])) < 2:
        return splits
    import random

    train = splits["train"]
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    size = max(1, round(share * len(train)))
    held = set(order[:size])
    echo(f"No dev split in the data: holding out {size:,} of the {len(train):,} training examples as dev "
         f"(data.validation_split={share:g}; 0 trains on all of them).")
    return {**splits, "train": [e for i, e in enumerate(train) if i not in held],
            "validation": [train[i] for i in sorted(held)]}


def limit_samples(task: Any, splits: dict[str, list], data: DataConfig, echo: Echo) -> dict[str, list]:
    """The first ``max_train_samples`` / ``max_eval_samples`` examples of each split; says so when
    the examples kept miss labels that the rest of their split has (a file sorted by label)."""
    limits = {"train": data.max_train_samples, "validation": data.max_eval_samples, "test": data.max_eval_samples}
    limited = {name: examples[: limits.get(name) or None] for name, examples in splits.items()}
    for name, examples in limited.items():
        if len(examples) < len(splits[name]):
            had, kept = task.labels({"train": splits[name]}), task.labels({"train": examples})
            if len(kept) < len(had):
                option = "max_train_samples" if name == "train" else "max_eval_samples"
                echo(f"WARNING: the first {len(examples):,} {name} examples (data.{option}) hold only {len(kept)} of "
                     f"the {len(had)} labels of that split (is the file sorted by label?), so "
                     + ("the model cannot learn the others" if name == "train" else "its scores cover only those")
                     + f". Shuffle the file, or raise data.{option}.")
    return limited


def check_training_labels(task: Any, train: list, labels: list[str]) -> None:
    """Refuse training data that holds a single label: a model would score a perfect, meaningless
    1.0 on data like it, and learn nothing. (A regression has no labels and is not checked.)"""
    seen = task.labels({"train": train}) if labels else []
    if labels and len(seen) < 2:
        raise DataError(f"The training data holds one label only ({', '.join(seen) or 'none'}), in all {len(train):,} examples: "
                        "there is nothing to tell apart, and any score would be meaningless. Check the label column "
                        "(task.options), or give data with at least two labels.")


def check_empty(features: list[dict], tokenizer: Any, echo: Echo) -> None:
    """Refuse training examples that are all empty (only special tokens); warn when some are."""
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}  # unknown words are words
    empty = sum(all(i in special for i in f["input_ids"]) for f in features)
    if features and empty == len(features):
        raise DataError(f"All {empty:,} training examples are empty after tokenization: is the text in another column "
                        "(task.options) or the file in another format (data.format)?")
    if empty:
        echo(f"WARNING: {empty:,} of the {len(features):,} training examples are empty after tokenization; they teach nothing.")


def training_batches(features: list[dict], collator: Any, batch_size: int, seed: int, model: Any) -> Iterator[dict]:
    """Collated training batches in an order shuffled with ``seed``, on ``model``'s device, made only
    as they are taken (what :meth:`peft_hub.Method.prepare` reads)."""
    import random

    order = list(range(len(features)))
    random.Random(seed).shuffle(order)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        batch = collator([features[i] for i in order[start : start + batch_size]])
        yield {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def _prefixed(metrics: dict, prefix: str) -> dict:
    """Trainer reports ``eval_f1``; keep the task's own names (``f1``) in metrics.json."""
    skip = {"runtime", "samples_per_second", "steps_per_second", "num_input_tokens_seen"}
    out = {}
    for key, value in metrics.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if name not in skip:
            out[name] = value
    return out


def _encode(task: Any, examples: list, tokenizer: Any, labels: list[str], options: Any, name: str, quiet: bool) -> list[dict]:
    """task.encode over chunks of examples, with progress."""
    chunk = 1000
    starts = range(0, len(examples), chunk)
    features: list[dict] = []
    for start in track(starts, f"Tokenizing {name} ({len(examples):,} examples)", len(starts), quiet, unit=f"x{chunk}"):
        features += task.encode(examples[start : start + chunk], tokenizer, labels, options)
    return features


def run(resolved: Resolved, *, quiet: bool = False, echo: Echo = print, extra_train: list | None = None) -> LoadedRun:
    """Train, evaluate and save one ``adapt`` run; returns the trained run (``.metrics`` holds
    what metrics.json holds). ``extra_train``: examples trained on beside the data's (self-training's
    pseudo-labels)."""
    recipe, task, method = resolved.recipe, resolved.task, resolved.method
    from .train import (FeatureDataset, default_head_rate, drop_own_checkpoints, head_input_rms, task_trainer, train_resumably,
                        tuned_options)

    started = begin(resolved, echo)
    out, echo, main, model_path, tokenizer = started.out, started.echo, started.main, started.model_path, started.tokenizer

    data = data_config_or_sample(resolved, echo)
    splits = task.read_data(data, resolved.task_options)
    splits = hold_out_dev(splits, recipe.data.validation_split, recipe.training.seed, echo)
    splits = limit_samples(task, splits, recipe.data, echo)
    if extra_train:
        splits["train"] = [*splits["train"], *extra_train]
    labels = task.labels(splits, data)
    check_training_labels(task, splits["train"], labels)
    base_tokens = len(tokenizer)
    prepare_tokenizer(task, tokenizer, resolved.task_options, splits["train"])
    features = {name: FeatureDataset(_encode(task, examples, tokenizer, labels, resolved.task_options, name, quiet), examples)
                for name, examples in splits.items()}
    echo("Data: " + ", ".join(f"{name} {len(ex)} examples" for name, ex in splits.items())
         + (f"; {len(labels)} labels" if labels else ""))
    check_empty(features["train"].features, tokenizer, echo)
    unknown = models.unknown_share(features["train"].features, tokenizer)
    if unknown > 0.5:
        echo(f"WARNING: {unknown:.0%} of the tokens of the first training examples are {tokenizer.unk_token}: the "
             f"tokenizer of {model_path} does not know this text (another language or script, or the wrong "
             "tokenizer). The model will learn little; use a model whose tokenizer covers the data.")

    quant = recipe.model.quantization
    # ignore_mismatched_sizes: a head of another size in the checkpoint must not stop a fresh one
    model = build_model(task, model_path, labels, resolved.task_options, tokenizer, trust_remote_code=recipe.model.trust_remote_code, ignore_mismatched_sizes=True,
                             **models.quantization_kwargs(quant, task.keep_full_precision))
    models.check_vocab(base_tokens, model, model_path)
    heads = task.head_modules(model)
    stale = models.reset_heads(model, heads, model_path)
    if stale:
        echo(f"{model_path} holds its own weights for {', '.join(stale)} (a pretraining or another task's head): "
             f"they are not reused; the {task.name} head starts fresh.")
    memory = models.weight_memory_mb(model)
    if quant != "none":
        echo(f"Base loaded in {quant}: {memory:,} MiB of weights")
    model = models.prepare_quantized(model, quant)
    head = [f"{name}.{p}" for name in heads for p, _ in model.get_submodule(name).named_parameters()]
    head_lr, why = recipe.training.head_learning_rate, "training.head_learning_rate"
    if head_lr is None:
        rms = head_input_rms(model, heads, task.collator(tokenizer)(features["train"].features[:16]))
        head_lr, why = default_head_rate(resolved.learning_rate, rms), f"its input's RMS is {rms or 0:.3g}"
    model, placed = apply_method(resolved, model, task, echo)
    method.prepare(model, resolved.method_options, training_batches(features["train"].features, task.collator(tokenizer),
                                                                    recipe.training.batch_size, recipe.training.seed, model))
    trainable, total = count_parameters(model)
    echo(f"Method {method.name}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%); "
         f"learning rate {resolved.learning_rate:g}, head ({', '.join(heads)}) {head_lr:.3g} ({why})")

    dev = features.get("validation")
    from .augment import wrap

    features["train"] = wrap(features["train"], resolved, tokenizer, labels, echo)
    distillation = None
    if recipe.teacher.run:
        from . import distill

        features["train"], teacher = distill.attach(recipe.teacher, task, resolved.task_options, tokenizer, labels,
                                                    features["train"], echo, quiet)
        distillation = distill.Distillation(task, recipe.teacher.temperature, recipe.teacher.alpha, teacher)
    trainer = task_trainer(resolved, model, tokenizer, features["train"], dev, labels, out, quiet=quiet,
                           learning_rates=dict.fromkeys(head, head_lr), early_stopping=dev is not None, distillation=distillation)
    result = train_resumably(trainer, recipe.output.resume, out, echo)
    model = trainer.model

    metrics: dict[str, Any] = {}
    scored = f"eval_{resolved.primary_metric}"
    best = [e for e in trainer.state.log_history if scored in e and e.get("step") == trainer.state.best_global_step]
    part = dev is not None and trainer.eval_dataset is not None and len(trainer.eval_dataset) < len(dev)
    if best and not part:  # the dev scores of the kept (best) checkpoint: no need to evaluate again
        metrics["dev"] = _prefixed(best[-1], "eval_")
    elif dev is not None:  # (scored in part during training: now whole)
        metrics["dev"] = _prefixed(trainer.evaluate(eval_dataset=dev, metric_key_prefix="dev"), "dev_")
    tuned = tuned_options(trainer)
    if tuned:  # options learnt on dev (a decision threshold): test is scored, and the run predicts, with them
        resolved.task_options = dataclasses.replace(resolved.task_options, **tuned)
        echo("Tuned on dev: " + ", ".join(f"{k}={v}" for k, v in tuned.items() if v is not None))
    if "test" in features:
        metrics["test"] = _prefixed(trainer.evaluate(eval_dataset=features["test"], metric_key_prefix="test"), "test_")
    metrics.update(
        cost_metrics(trainer, result, trainable, total),
        quantization=quant,
        base_weight_memory_mb=memory,
        best_step=trainer.state.best_global_step,
        train_loss=result.training_loss,
        adapted=placed,
        primary_metric=resolved.primary_metric,
        greater_is_better=task.greater_is_better,
        summary_metrics=list(task.summary_metrics or (resolved.primary_metric,)),
        history=[e for e in trainer.state.log_history if not any(k.startswith("test_") for k in e)],
    )
    if distillation is not None:
        metrics["teacher"] = {"run": recipe.teacher.run, "temperature": recipe.teacher.temperature, "alpha": recipe.teacher.alpha,
                              "cache": recipe.teacher.cache,
                              "unlabeled_examples": len(features["train"]) - len(splits["train"])}
    metrics["warnings"] = guard.warnings(metrics, resolved.primary_metric)
    if main:
        resolved.method.save(model, out / "adapter")
        models.save_tokenizer(tokenizer, out / "tokenizer")
        rundir.write_json(out / "labels.json", labels)
        rundir.finish(out, resolved, metrics, {"task": task.name, "method": method.name, "base_model": model_path},
                      curves_metric=resolved.primary_metric)
    else:
        drop_own_checkpoints(trainer, out)
    model.eval()
    return LoadedRun(resolved, model, tokenizer, labels, out, metrics)


def merge(run_dir: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Fold a run's method into the base weights: a plain transformers model + tokenizer that
    loads with ``AutoModelFor....from_pretrained``. Raises for methods that cannot merge."""
    output = Path(output)
    if output.exists() and not output.is_dir():  # outputs are checked before any model is loaded
        raise RunDirError(f"--output {output} is a file; merge writes a model directory. Choose another --output.")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise RunDirError(f"{output} is not empty. Choose another --output or pass --overwrite.")
    loaded = load_run(run_dir, full_precision=True)  # never merge into 8-bit/4-bit weights
    method = loaded.resolved.method
    models.copy_shared(loaded.model)  # weights both halves share are merged into, and written as, a copy each
    merged = method.merge(loaded.model)  # methods that cannot merge say why here, before anything is written
    merged.save_pretrained(str(output), safe_serialization=True)
    models.save_tokenizer(loaded.tokenizer, output)
    return output


def scoring_data(data: str, fmt: str = "auto", max_eval_samples: int | None = None) -> DataConfig:
    """What ``evaluate --data`` scores: every split of a directory, or one file as it is (whatever
    its name says)."""
    path = Path(data)
    if path.is_file():
        return DataConfig(train=data, format=fmt, max_eval_samples=max_eval_samples)
    if not path.exists() and os.sep in data:
        raise DataError(f"--data {data!r} does not exist. Give a data directory or a file.")
    return DataConfig(path=data, format=fmt, max_eval_samples=max_eval_samples)


def evaluate(run_dir: str | Path, data: DataConfig, quiet: bool = False, expect_task: str | None = None,
             task_options: dict[str, Any] | None = None) -> dict:
    """Scores of a finished run on every split of ``data`` (``task_options`` replace some of the
    run's, e.g. its tuned threshold)."""
    loaded = load_run(run_dir, expect_task, task_options=task_options)
    task = loaded.resolved.task
    splits = task.read_data(data, loaded.resolved.task_options)
    splits = limit_samples(task, splits, data, (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    from .train import FeatureDataset, task_trainer

    results = {}
    scratch = Path(tempfile.mkdtemp(prefix="peft-hub-evaluate-"))  # the Trainer's output_dir; the run stays untouched
    for name, examples in splits.items():
        unknown = task.labels({"train": examples})
        missing = sorted(set(unknown) - set(loaded.labels))
        if missing:
            raise RunDirError(
                f"The {name} data has labels the run never saw in training: {', '.join(missing)}. "
                f"The run knows: {', '.join(loaded.labels)}."
            )
        features = FeatureDataset(task.encode(examples, loaded.tokenizer, loaded.labels, loaded.resolved.task_options), examples)
        trainer = task_trainer(loaded.resolved, loaded.model, loaded.tokenizer, features, None, loaded.labels,
                               scratch, quiet=quiet)
        scores = trainer.evaluate(eval_dataset=features, metric_key_prefix=name)
        results[name] = _prefixed(scores, name + "_")
    shutil.rmtree(scratch, ignore_errors=True)
    return results


