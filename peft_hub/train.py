"""Builds a ``transformers.Trainer`` (accelerate underneath) from a resolved recipe."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import PeftHubError
from .guard import MAJORITY, progress_note
from .progress import duration, interactive
from .ranks import peer_lost, sees_main_storage, several_nodes, steps_everywhere
from .features import FeatureDataset
from .recipes import Resolved


def peak_memory_mb() -> float:
    """Peak memory so far: allocated GPU memory on CUDA, else the process's peak resident memory."""
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _format_log(logs: dict) -> str | None:
    """One readable line for a Trainer log entry (instead of a raw dict)."""
    epoch = logs.get("epoch")
    head = f"epoch {epoch:.2f}" if isinstance(epoch, (int, float)) else "step"
    if "loss" in logs:
        return f"{head}: loss {logs['loss']:.4f}, lr {logs.get('learning_rate', 0):.2e}"
    scores = {k.split("_", 1)[1]: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, float)}
    if scores:
        keep = [k for k in scores if not k.startswith(("runtime", "samples_per", "steps_per", "f1_", "majority_"))]
        return f"{head}: dev " + ", ".join(f"{k} {scores[k]:.4f}" for k in keep) + progress_note(scores)
    return None


def _callbacks(quiet: bool) -> tuple[list, list]:
    """(callbacks to add, callbacks to remove): readable progress lines, a step-time clock."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class Progress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            line = _format_log(logs or {})
            if state.is_world_process_zero and self.training_bar is not None and line:
                self.training_bar.write(line)

    class Clock(TrainerCallback):
        """Time spent training, without the evaluations and checkpoint saves in between."""

        def __init__(self):
            self.excluded = 0.0
            self.last_end = None
            self.pause = False

        def on_step_end(self, args, state, control, **kwargs):
            self.last_end = time.perf_counter()

        def on_evaluate(self, args, state, control, **kwargs):
            self.pause = True

        on_save = on_evaluate

        def on_step_begin(self, args, state, control, **kwargs):
            if self.pause and self.last_end is not None:
                self.excluded += time.perf_counter() - self.last_end
            self.pause = False

        on_train_end = on_step_begin

    class PlainProgress(TrainerCallback):
        """Not on a terminal: each log entry as one line with the step, the share done and the time left."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()
            if state.is_world_process_zero:
                print(f"Training: {state.max_steps:,} steps", file=sys.stderr, flush=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            line = _format_log(logs or {})
            if not (state.is_world_process_zero and line):
                return
            done = state.global_step / max(state.max_steps, 1)
            elapsed = time.monotonic() - self.start
            left = f", {duration(elapsed / done - elapsed)} left" if 0 < done < 1 else ""
            print(f"step {state.global_step:,}/{state.max_steps:,} ({100 * done:.0f}%{left}) {line}", file=sys.stderr, flush=True)

    clock = Clock()
    if quiet:
        return [clock], [PrinterCallback, ProgressCallback]
    return [clock, Progress() if interactive() else PlainProgress()], [PrinterCallback, ProgressCallback]


COMPLETE = "COMPLETE"
TUNED_FILE = "tuned_options.json"


def _CompleteMarker():
    """Marks a checkpoint directory complete once Trainer has written all of it, so a run killed
    while saving never leaves a checkpoint that looks usable."""
    from transformers import TrainerCallback

    class CompleteMarker(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if args.should_save:  # rank 0, and each node's first process where nodes keep their own
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if path.is_dir():
                    (path / COMPLETE).write_text("")

    return CompleteMarker()


def drop_own_checkpoints(trainer: Any, out: Path) -> None:
    """On a node that kept checkpoints of its own (storage apart from rank 0's), remove them once
    the run is done, as rank 0 does with the run's; the directory goes too if nothing else is in it."""
    import shutil

    if trainer.args.should_save and not trainer.is_world_process_zero():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        with contextlib.suppress(OSError):
            out.rmdir()


def newest_complete_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the highest step that was completely written, and, in a run of several
    processes, by every node that keeps checkpoints of its own (a node killed while saving has one
    step fewer than the others: they all go back to the last step every node has)."""
    found = {int(p.name.split("-")[-1]): p for p in directory.glob("checkpoint-*")
             if (p / COMPLETE).exists() and p.name.split("-")[-1].isdigit()}
    everywhere = steps_everywhere(set(found))
    return found[max(everywhere)] if everywhere else None


def train_resumably(trainer: Any, resume: bool, output_dir: Path, echo: Callable[[str], Any] = print) -> Any:
    """``trainer.train()``, from the newest complete checkpoint when resuming; on Ctrl-C, save a
    checkpoint and say how to continue."""
    checkpoint = None
    if resume:
        checkpoint = newest_complete_checkpoint(output_dir / "checkpoints")
        if checkpoint is None:
            raise PeftHubError(f"Nothing to resume in {output_dir}: it has no complete checkpoint. Run without --resume.")
        echo(f"Resuming from {checkpoint}")
    try:
        return trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except RuntimeError as exc:
        lost = peer_lost(exc, trainer.args.ddp_timeout)
        if lost:
            raise PeftHubError(lost) from None
        raise
    except KeyboardInterrupt:
        trainer._save_checkpoint(trainer.model, trial=None)
        _CompleteMarker().on_save(trainer.args, trainer.state, trainer.control)
        raise PeftHubError(
            f"Interrupted at step {trainer.state.global_step}; a checkpoint was saved in {output_dir / 'checkpoints'}. "
            "Run the same command again with --resume to continue."
        ) from None


def _trainer_class() -> type:
    from transformers import Trainer

    class HubTrainer(Trainer):
        """transformers' Trainer, with checkpoints of in-house methods (bottleneck adapter, freeze,
        full) holding only the parameters that train, as safetensors. peft models keep peft's own
        checkpoint format. Trainer's best-model and resume loading read both."""

        #: set by task_trainer: the run's method (peft_hub.Method) and its options. Its own
        #: save_checkpoint / load_checkpoint write every checkpoint and read it back at the
        #: best-checkpoint reload and at --resume (FSDP and DeepSpeed keep their own formats).
        method: Any = None
        method_options: Any = None
        #: set by task_trainer: step -> the task options tuned on dev at that evaluation (Task.tune)
        tuned: dict = {}

        def _method_checkpoints(self) -> bool:
            return self.method is not None and not (self.is_fsdp_enabled or self.is_deepspeed_enabled)

        def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
            if not self.args.should_save:
                return
            output_dir = output_dir or self.args.output_dir
            if self.state.global_step in self.tuned:  # a resumed run still knows a best checkpoint's tuned options
                os.makedirs(output_dir, exist_ok=True)
                Path(output_dir, TUNED_FILE).write_text(json.dumps(self.tuned[self.state.global_step]), encoding="utf-8")
            if self._method_checkpoints():
                return self.method.save_checkpoint(self.model, Path(output_dir))
            if hasattr(self.model, "peft_config"):
                return super()._save(output_dir, state_dict)
            from transformers.utils import SAFE_WEIGHTS_NAME

            from .methods import save_trainable  # what Trainer's loaders read back (not strict: only what trains)

            save_trainable(self.model, Path(output_dir, SAFE_WEIGHTS_NAME))

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            if not self._method_checkpoints():
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            self.method.load_checkpoint(self.model, Path(resume_from_checkpoint))

        def _load_best_model(self) -> None:
            if not self._method_checkpoints():
                return super()._load_best_model()
            self.method.load_checkpoint(self.model, Path(self.state.best_model_checkpoint))

        #: the dataset being evaluated (set by evaluate: a task's metric reads its features and examples)
        evaluating: Any = None

        #: set by build_trainer: scores the model on held-out data in place of Trainer's loss loop
        #: (a pretraining objective's own evaluation: perplexity, STS Spearman, accuracy ...)
        own_evaluation: Callable[[Any], dict[str, float]] | None = None
        #: set by task_trainer: a task's own scoring of the evaluated dataset, or None for the loop
        task_evaluation: Callable[[Any, Any], dict[str, float] | None] | None = None

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            self.evaluating = eval_dataset if eval_dataset is not None else self.eval_dataset
            if self.own_evaluation is not None:
                scores = self.own_evaluation(self.model)
            elif self.task_evaluation is not None:
                scores = self.task_evaluation(self.model, self.evaluating)
            else:
                scores = None
            if scores is None:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in scores.items()}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

        #: set by build_trainer: rewrites each batch before the forward pass (an objective's choice)
        batch_transform: Callable[[dict], dict] | None = None

        #: set by build_trainer: the batches of this process (peft_hub.batching.rank_batches)
        batches: Any = None

        #: set by build_trainer: {parameter-name suffix: learning rate} for weights with a rate of their own
        learning_rates: dict[str, float] = {}

        def create_optimizer(self, *args, **kwargs):
            if self.optimizer is None and self.method is not None:
                self.optimizer = self.method.optimizer(self.model, self.method_options, self.args.learning_rate,
                                                       self.args.weight_decay)
            optimizer = super().create_optimizer(*args, **kwargs)
            if self.learning_rates:
                _own_learning_rates(optimizer, self.model, self.learning_rates)
            return optimizer

        def _get_train_sampler(self, *args, **kwargs):
            return self.batches or super()._get_train_sampler(*args, **kwargs)

        #: set by task_trainer: the loss of batches that carry a teacher's logits (peft_hub.distill)
        distillation: Any = None

        #: labelled items per batch, averaged over the training set (set by build_trainer; None: the
        #: mean loss of each batch, transformers' way)
        labeled_per_batch: float | None = None
        #: this class scales the loss for gradient accumulation itself (see compute_loss)
        loss_is_scaled_for_ga = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """The model's mean loss over the batch's labelled items, reweighted while training.

            With ``labeled_per_batch`` set, a batch counts in proportion to its labelled tokens:
            loss = sum over the batch / (labelled tokens of an average batch x accumulation steps).
            Every token then weighs the same whatever the batching, so length-grouped batches
            (many short sentences in one, few long ones in another) optimise the objective that
            random batches do. Otherwise each batch's mean counts the same. Either way the loss is
            divided by the accumulation steps here: transformers 5 leaves that to models that
            accept ``num_items_in_batch`` but BERT's loss ignores it, so gradients would grow
            with ``grad_accum``."""
            if self.batch_transform is not None:
                inputs = self.batch_transform(inputs)
            steps = getattr(self, "current_gradient_accumulation_steps", None) or self.args.gradient_accumulation_steps
            if self.distillation is not None and "teacher_mask" in inputs:  # a training batch with soft targets
                return self.distillation.loss(model, inputs) / steps
            labels = inputs.get("labels")
            result = super().compute_loss(model, inputs, return_outputs=return_outputs)
            if not model.training:
                return result
            loss = result[0] if return_outputs else result
            if self.labeled_per_batch and labels is not None:
                loss = loss * ((labels != -100).sum() / (self.labeled_per_batch * steps))
            else:
                loss = loss / steps
            return (loss, result[1]) if return_outputs else loss

    return HubTrainer


#: A fresh head's default peak rate x the root-mean-square of its input features. Adam moves every
#: weight by about the rate per step, so a head's logits move in proportion to rate x input scale;
#: fixing their product gives heads on small features (all-MiniLM-L6-v2's untrained [CLS] pooler:
#: RMS 0.07) a fast rate and heads on large ones (its hidden states: RMS 0.4) a slower one.
#: Calibrated on TREC's 50 labels (benchmarks/RESULTS.md, "Defaults across datasets").
HEAD_RATE_X_RMS = 3.5e-3


def head_input_rms(model: Any, heads: list[str], batch: dict) -> float | None:
    """Root-mean-square of what the ``heads`` modules receive on ``batch`` (one forward pass, no
    gradients, dropout off); None when no head was reached."""
    import torch

    seen: list[float] = []

    def record(module: Any, args: tuple) -> None:
        if args and torch.is_tensor(args[0]) and args[0].is_floating_point():
            seen.append(args[0].detach().float().pow(2).mean().sqrt().item())

    hooks = [model.get_submodule(name).register_forward_pre_hook(record) for name in heads]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return sum(seen) / len(seen) if seen else None


def default_head_rate(learning_rate: float, rms: float | None) -> float:
    """``HEAD_RATE_X_RMS / rms``, never below the method's own rate nor above 0.1."""
    if not rms:
        return learning_rate
    return max(learning_rate, min(HEAD_RATE_X_RMS / rms, 0.1))


def plain_name(name: str) -> str:
    """A parameter's name without peft's copy marker: ``cls.predictions.transform.modules_to_save.
    default.dense.weight`` -> ``cls.predictions.transform.dense.weight``, the name it had before
    a method wrapped the model (still behind peft's ``base_model.model.`` prefix)."""
    return re.sub(r"\.modules_to_save\.[^.]+(?=\.)", "", name)


def matching_suffix(name: str, suffixes: Iterable[str]) -> str | None:
    """The first of ``suffixes`` that the parameter ``name`` ends with (compared as ``plain_name``)."""
    plain = plain_name(name)
    return next((suffix for suffix in suffixes if plain.endswith(suffix)), None)


def _own_learning_rates(optimizer: Any, model: Any, rates: dict[str, float]) -> None:
    """Move each parameter whose name ends with a key of ``rates`` into a group of its own at that
    peak rate (weight decay as before). The schedule then scales every group alike."""
    own = {id(p): rates[suffix] for n, p in model.named_parameters() if (suffix := matching_suffix(n, rates))}
    added = []
    for group in optimizer.param_groups:
        keep, moved = [], {}
        for p in group["params"]:
            (moved.setdefault(own[id(p)], []) if id(p) in own else keep).append(p)
        group["params"] = keep
        settings = {k: v for k, v in group.items() if k != "params"}
        added += [{**settings, "params": params, "lr": rate} for rate, params in moved.items()]
    for group in added:
        optimizer.add_param_group(group)


@contextlib.contextmanager
def _quantized_in_house(model: Any):
    """Trainer refuses a quantized model unless it is a peft model ("attach trainable adapters");
    in-house methods attach theirs themselves (and leave the quantized weights frozen), so the
    check is lifted while such a Trainer is built."""
    import transformers.trainer as trainer_module

    if not getattr(model, "is_quantized", False) or hasattr(model, "peft_config"):
        yield
        return
    original = trainer_module.validate_quantization_for_training
    trainer_module.validate_quantization_for_training = lambda model: None
    try:
        yield
    finally:
        trainer_module.validate_quantization_for_training = original


def build_trainer(
    training: Any,
    learning_rate: float,
    model: Any,
    tokenizer: Any,
    train: Any,
    dev: Any,
    output_dir: Path,
    collator: Any,
    compute_metrics: Callable[[Any], dict] | None = None,
    predictions: Callable[[Any], Any] | None = None,
    metric: str = "loss",
    greater_is_better: bool = False,
    eval_steps: int | None = None,
    quiet: bool = False,
    callbacks: tuple = (),
    batch_transform: Callable[[dict], dict] | None = None,
    learning_rates: dict[str, float] | None = None,
    own_evaluation: Callable[[Any], dict[str, float]] | None = None,
) -> Any:
    """A Trainer for ``model`` from a recipe's ``training`` section. Evaluates on ``dev`` every
    epoch (or every ``eval_steps``), keeps the best checkpoint by ``metric``, logs to TensorBoard.
    ``predictions`` turns each evaluation batch's outputs into what ``compute_metrics`` gets.
    ``learning_rates`` gives the parameters named by these suffixes their own peak rate.
    ``own_evaluation(model)`` replaces Trainer's evaluation loop on ``dev`` (which then only marks
    that there is held-out data)."""
    import torch
    from transformers import TrainingArguments

    t = training
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("true", "1") and not torch.cuda.is_available():
        raise PeftHubError("FSDP was asked for (ACCELERATE_USE_FSDP=true, as `accelerate launch` with an FSDP config sets "
                           "it), but accelerate shards models with FSDP on GPUs only: without CUDA, Trainer would train "
                           "as plain DDP without saying so. On this machine use --num-processes N (DDP); the FSDP configs "
                           "in examples/accelerate/ are for GPU machines.")
    if t.precision == "fp16" and not torch.cuda.is_available():
        raise PeftHubError("training.precision=fp16 needs a CUDA GPU; on this machine use bf16 (or fp32).")
    if t.precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise PeftHubError("This GPU does not support bf16; use training.precision=fp16 (or fp32).")
    if dev is None:
        interval = dict(eval_strategy="no", save_strategy="no")
    elif eval_steps or t.max_steps:  # evaluate (and keep the best) at least once before the end
        # optimizer steps in an epoch, over every process (torchrun sets WORLD_SIZE)
        global_batch = t.batch_size * int(os.environ.get("WORLD_SIZE", "1"))
        steps_per_epoch = max(1, math.ceil(len(train) / global_batch) // t.grad_accum) if hasattr(train, "__len__") else t.max_steps
        every = eval_steps or min(steps_per_epoch, t.max_steps)
        interval = dict(eval_strategy="steps", save_strategy="steps", eval_steps=every, save_steps=every)
    else:
        interval = dict(eval_strategy="epoch", save_strategy="epoch")
    # transformers 5 has no logging_dir argument: TensorBoard reads this variable. Other trackers
    # log offline / into the run directory unless the user's own settings say otherwise.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "tensorboard")
    if "wandb" in t.report_to:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(output_dir))
    if "mlflow" in t.report_to:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (output_dir / "mlruns").resolve().as_uri())
    args = TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        learning_rate=learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler,
        train_sampling_strategy="sequential" if t.batching == "sequential" else "random",
        logging_steps=t.logging_steps,
        load_best_model_at_end=dev is not None,
        metric_for_best_model=metric,
        greater_is_better=greater_is_better,
        save_total_limit=1,
        seed=t.seed,
        report_to=list(t.report_to) or "none",
        disable_tqdm=quiet or not interactive(),  # not a terminal: PlainProgress prints lines
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
        gradient_accumulation_steps=t.grad_accum,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        activation_checkpointing=t.gradient_checkpointing,
        ddp_find_unused_parameters=False,
        # True scales the *reported* loss by the number of processes in transformers 5.23;
        # False: DDP averages the per-process mean losses, and losses read the same in any setup.
        average_tokens_across_devices=False,
        ddp_timeout=t.ddp_timeout,
        **interval,
    )
    if several_nodes():
        args.device  # sets up the process group
        # a node whose storage is not rank 0's keeps checkpoints of its own (its resume and the
        # best-checkpoint reload read them); the run directory is rank 0's alone
        args.save_on_each_node = not sees_main_storage(output_dir)
    if t.save_steps:
        args.save_strategy, args.save_steps = "steps", t.save_steps
        if args.eval_strategy != "no":  # keeping the best needs a checkpoint at every evaluation
            args.eval_strategy, args.eval_steps = "steps", t.save_steps
    if t.fast_dropout and not torch.cuda.is_available():
        from .fast import use_fast_dropout

        use_fast_dropout(model)
    add, remove = _callbacks(quiet)
    with _quantized_in_house(model):
        trainer = _trainer_class()(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=dev,
            data_collator=collator,
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
            preprocess_logits_for_metrics=(lambda logits, labels: predictions(logits)) if predictions else None,
        )
    trainer.batch_transform = batch_transform
    trainer.own_evaluation = own_evaluation
    trainer.learning_rates = learning_rates or {}
    if isinstance(train, FeatureDataset):
        from .batching import rank_batches

        lengths = [len(f["input_ids"]) for f in train.features]
        trainer.batches = rank_batches(t.batching, lengths, t.batch_size, t.grad_accum, t.seed, args.process_index, args.world_size)
    if t.loss == "token" and isinstance(train, FeatureDataset) and train.features and "labels" in train.features[0]:
        # labelled items in one process's average batch: each process's loss is its batch's sum over
        # this, and DDP averages the processes' gradients, so a token weighs the same in any setup
        global_size = t.batch_size * args.world_size
        trainer.labeled_per_batch = train.num_labeled() / (math.ceil(len(train) / global_size) * args.world_size)
    for callback in remove:
        trainer.remove_callback(callback)
    for callback in [*add, _CompleteMarker(), *callbacks]:
        trainer.add_callback(callback)
    trainer.clock = add[0]
    return trainer


def tuned_options(trainer: Any) -> dict:
    """The task options tuned on dev at the kept (best, else last) checkpoint; {} when none were."""
    step = trainer.state.best_global_step or trainer.state.global_step
    if step in trainer.tuned:
        return trainer.tuned[step]
    saved = Path(trainer.state.best_model_checkpoint or "") / TUNED_FILE
    return json.loads(saved.read_text(encoding="utf-8")) if trainer.state.best_model_checkpoint and saved.is_file() else {}


def task_trainer(resolved: Resolved, model: Any, tokenizer: Any, train: Any, dev: Any, labels: list[str],
                 output_dir: Path, quiet: bool = False, learning_rates: dict[str, float] | None = None,
                 early_stopping: bool = False, distillation: Any = None) -> Any:
    """The Trainer of an ``adapt`` run: the task's collator, predictions and metric (with the
    collapse guard's constant-prediction score beside it), best epoch by the task's primary metric;
    ``learning_rates`` as in :func:`build_trainer` (the fresh head's own rate); ``early_stopping``
    stops after ``training.early_stopping_patience`` evaluations without a better primary metric;
    ``distillation`` (:class:`peft_hub.distill.Distillation`) adds a teacher's soft targets."""
    from transformers import EarlyStoppingCallback

    from .tasks import Evaluation, Task

    task, metric = resolved.task, resolved.primary_metric
    trainer: Any = None
    cap = task.evaluation_cap(resolved.task_options)
    if dev is not None and cap and len(dev) > cap:  # slow scoring (generation): the first ones while training
        dev = FeatureDataset(dev.features[:cap], dev.examples[:cap])

    def compute_metrics(prediction: Any) -> dict:
        dataset = trainer.evaluating
        evaluation = Evaluation(prediction.predictions, prediction.label_ids, labels, getattr(dataset, "features", []),
                                getattr(dataset, "examples", []), resolved.task_options)
        if dataset is dev and dev is not None and (tuned := task.tune(evaluation)):  # options learnt on dev, per checkpoint
            trainer.tuned[trainer.state.global_step] = tuned
            evaluation = dataclasses.replace(evaluation, options=dataclasses.replace(resolved.task_options, **tuned))
        scores = task.compute_metrics(evaluation)
        constant = task.constant_predictions(evaluation)
        if constant is not None and metric in scores:
            scores[MAJORITY + metric] = task.compute_metrics(dataclasses.replace(evaluation, predictions=constant))[metric]
        return scores

    collator = task.collator(tokenizer)
    if distillation is not None:
        from .distill import DistillCollator

        collator = DistillCollator(collator)
    trainer = build_trainer(
        resolved.recipe.training, resolved.learning_rate, model, tokenizer, train, dev, output_dir,
        collator=collator, compute_metrics=compute_metrics, predictions=task.predictions,
        metric=metric, greater_is_better=task.greater_is_better, quiet=quiet, learning_rates=learning_rates,
        callbacks=(*((EarlyStoppingCallback(patience),) if early_stopping and (patience := resolved.recipe.training.early_stopping_patience) else ()),
                   *resolved.method.callbacks(model, resolved.method_options)),
    )
    trainer.method, trainer.method_options = resolved.method, resolved.method_options
    trainer.tuned = {}  # step -> the task options tuned on dev at that evaluation (Task.tune)

    def task_evaluation(model: Any, dataset: Any) -> dict[str, float] | None:
        was_training = model.training
        model.eval()
        try:
            return task.evaluate_split(model, tokenizer, getattr(dataset, "features", []), getattr(dataset, "examples", []),
                                       labels, resolved.task_options)
        finally:
            model.train(was_training)

    if type(task).evaluate_split is not Task.evaluate_split:
        trainer.task_evaluation = task_evaluation
    trainer.distillation = distillation
    return trainer
