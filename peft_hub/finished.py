"""Finished ``adapt`` runs, opened again: checked (:func:`check_run`, :func:`open_run`) or with
their trained model rebuilt (:func:`load_run`) for predicting, evaluating, merging, serving,
teaching (distillation) and labelling (self-training). A run is named by its directory or by a hub
entry's name.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import locations, models, recipes, rundir
from .errors import DataError, RecipeError, RunDirError
from .recipes import Resolved
from .tasks import build_model


@dataclass
class LoadedRun:
    resolved: Resolved
    model: Any
    tokenizer: Any
    labels: list[str]
    directory: Path
    metrics: dict | None = None

    def predict(self, inputs: list[str | dict[str, str]]) -> list:
        """Predictions for ``inputs``: dicts of the task's ``input_fields``, or plain texts for a
        task whose input is one text."""
        task = self.resolved.task
        return task.predict(self.model, self.tokenizer, [as_input(task, i) for i in inputs], self.labels,
                            self.resolved.task_options)


def as_input(task: Any, value: str | dict[str, str]) -> dict[str, str]:
    """One ``predict`` input as a dict of the task's ``input_fields``; a plain string stands for
    the only field of a one-text task."""
    fields = task.input_fields
    if isinstance(value, str):
        if len(fields) != 1:
            raise DataError(f"The {task.name!r} task takes {len(fields)} texts per input ({', '.join(fields)}), "
                            f"got one: {value[:80]!r}. Give them all.")
        return {fields[0]: value}
    missing = [f for f in fields if not isinstance(value.get(f), str)]
    if missing:
        raise DataError(f"A {task.name!r} input needs the text field(s) {', '.join(fields)}; "
                        f"missing or not text: {', '.join(missing)} (got keys {sorted(value)}).")
    return {f: value[f] for f in fields}


def check_run(directory: Path, expect_task: str | None = None) -> tuple[dict, list[str]]:
    """(run.json, labels) of a finished ``adapt`` run whose weights match their recorded sha256;
    a clear error for anything else (no run, a pretrain output, another task, damaged files)."""
    info_path = directory / "run.json"
    if not info_path.exists():
        what = "is not a directory" if not directory.is_dir() else "holds no finished run (no run.json)"
        raise RunDirError(f"{directory} {what}. Pass the --output directory of a finished `peft-hub adapt`"
                          " or the name of a hub entry (peft-hub hub list).")
    info = rundir.read_run_file(directory, "run.json", json.loads)
    if not isinstance(info, dict):
        raise RunDirError(f"{info_path} is damaged (not a JSON object). Restore it from a copy of the run, or run it again.")
    if info.get("kind") == "pretrain":
        raise RunDirError(
            f"{directory} is the output of `peft-hub pretrain` (a model, with no task head). "
            f"Adapt it to a task first: peft-hub adapt --model {directory} --method lora --task ner --data DIR"
        )
    if expect_task and info.get("task") != expect_task:
        raise RunDirError(
            f"{directory} is a {info.get('task')!r} run, not a {expect_task!r} run. "
            f"Pass a {expect_task!r} run, or drop --task to use this one as it is."
        )
    if "base_model" not in info:
        raise RunDirError(f"{info_path} is damaged (no base_model). Restore it from a copy of the run, or run it again.")
    labels = rundir.read_run_file(directory, "labels.json", json.loads)
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise RunDirError(f"{directory / 'labels.json'} is damaged (expected a list of label names). Restore it, or run it again.")
    rundir.verify_weights(directory, info.get("sha256", {}))  # runs saved before checksums have none to check
    return info, labels


def label_difference(mine: list[str], theirs: list[str]) -> str | None:
    """How two label lists differ, for a message (None: they are the same, in the same order)."""
    if mine == theirs:
        return None
    only = sorted(set(mine) ^ set(theirs))
    return f"{', '.join(only[:6])} in one only" if only else "the same, in another order"


@dataclass
class RunRecord:
    """What a finished ``adapt`` run recorded, checked: run.json, its labels, its validated recipe."""

    directory: Path
    info: dict
    labels: list[str]
    resolved: Resolved

    @property
    def base(self) -> str:
        """The base model it was trained on, on this machine (resolved again when the run moved)."""
        base = self.info["base_model"]
        return base if os.path.exists(base) else models.resolve(self.resolved.recipe.model.name)


def open_run(directory: str | Path, expect_task: str | None = None) -> RunRecord:
    """A finished ``adapt`` run (a directory or a hub entry's name), checked as :func:`check_run`
    does, with its recipe validated; no model is loaded."""
    directory = locations.locate(directory)
    info, labels = check_run(directory, expect_task)
    data = rundir.read_run_file(directory, "recipe.yaml", recipes.safe_yaml)
    return RunRecord(directory, info, labels, recipes.validate(data if isinstance(data, dict) else {}, str(directory / "recipe.yaml")))


def with_task_options(resolved: Resolved, overrides: dict[str, Any] | None) -> Resolved:
    """``resolved`` with some task options replaced (``predict``/``evaluate --option threshold=0.5``),
    checked as a recipe's are."""
    if not overrides:
        return resolved
    from . import options as opts

    parsed, errors = opts.parse(type(resolved.task_options), {**opts.to_dict(resolved.task_options), **overrides}, "--option")
    if errors:
        raise RecipeError(errors, "task options")
    return dataclasses.replace(resolved, task_options=parsed)


def load_run(directory: str | Path, expect_task: str | None = None, full_precision: bool = False,
             task_options: dict[str, Any] | None = None) -> LoadedRun:
    """Rebuild the trained model of a finished ``adapt`` run (a directory or a hub entry's name),
    in eval mode: on a base quantized as in training, or in full precision with ``full_precision``
    (for merging). ``task_options`` replace some of the run's task options (e.g. a threshold)."""
    run = open_run(directory, expect_task)
    run.resolved = with_task_options(run.resolved, task_options)
    directory, labels, resolved, base = run.directory, run.labels, run.resolved, run.base
    locations.check_base(run, base)
    models.quiet_libraries()
    tokenizer = models.load_tokenizer(str(directory / "tokenizer"))
    quant = "none" if full_precision else resolved.recipe.model.quantization
    model = build_model(resolved.task, base, labels, resolved.task_options, tokenizer, trust_remote_code=resolved.recipe.model.trust_remote_code,
                                      **models.quantization_kwargs(quant, resolved.task.keep_full_precision))
    model = models.prepare_quantized(model, quant)
    try:
        model = resolved.method.load(model, directory / "adapter", resolved.method_options, resolved.task)
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. a weight file the checksums did not cover
        raise RunDirError(f"{directory / 'adapter'} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}). "
                          "Restore it from a copy of the run, or run it again.") from None
    model.eval()
    return LoadedRun(resolved, model, tokenizer, labels, directory)


def group_inputs(task: Any, texts: list[str]) -> list[dict[str, str]]:
    """Positional texts as inputs: each run of ``len(task.input_fields)`` texts is one input."""
    fields = task.input_fields
    if len(texts) % len(fields):
        raise DataError(f"The {task.name!r} task takes {len(fields)} texts per input ({', '.join(fields)}); "
                               f"got {len(texts)} argument(s), not a multiple of {len(fields)}.")
    return [dict(zip(fields, texts[i : i + len(fields)])) for i in range(0, len(texts), len(fields))]


def read_inputs(task: Any, stream: Any) -> list[dict[str, str]]:
    """Inputs from a file: a line each (one text, a JSON object, or the texts tab-separated)."""
    fields, inputs = task.input_fields, []
    for number, line in enumerate(stream, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if len(fields) == 1:
            inputs.append({fields[0]: line})
        elif line.lstrip().startswith("{"):
            try:
                inputs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"--input, line {number}: invalid JSON ({exc.msg}).") from None
        else:
            cells = line.split("\t")
            if len(cells) != len(fields):
                raise DataError(f"--input, line {number}: expected {len(fields)} tab-separated texts ({', '.join(fields)}) "
                                f"or a JSON object, got {len(cells)} field(s).")
            inputs.append(dict(zip(fields, cells)))
    return inputs
