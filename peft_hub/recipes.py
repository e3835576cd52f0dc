"""Recipes: YAML loading, ``key=value`` / ``~key`` overrides and validation that reports every
error at once, without loading any model or data. The schema itself is :mod:`peft_hub.schema`
(its classes are importable from here too).

Input paths inside a recipe file (``data.*``, a ``model.name`` that is a relative directory, a
component option naming an existing file such as ``objective.options.sts``)
resolve relative to the file; ``output.dir`` and everything given on the command line resolve
relative to the current directory.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import options as opts
from . import registry
from .errors import PeftHubError, RecipeError
from .schema import (  # noqa: F401  (the schema, re-exported)
    TRACKERS,
    ModelConfig,
    ComponentConfig,
    DataConfig,
    TrainingConfig,
    OutputConfig,
    Recipe,
    SelfTrainConfig,
    TeacherConfig,
    TextDataConfig,
    PretrainTrainingConfig,
    PretrainRecipe,
)


# -- building the raw mapping --------------------------------------------------------------------


#: The most values a recipe may expand to. YAML aliases let a few lines stand for billions of values
#: (an "alias bomb"); real recipes hold a few hundred.
MAX_YAML_VALUES = 100_000


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` (a recipe can never construct Python objects), refusing documents whose
    aliases expand to more than :data:`MAX_YAML_VALUES` values before building them."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    sizes: dict[int, int] = {}

    def size(n: Any) -> int:  # aliases share nodes: memoised, this is linear in the document
        if id(n) not in sizes:
            sizes[id(n)] = 0  # a recursive alias counts once
            children = n.value if isinstance(n, yaml.SequenceNode) else [v for pair in n.value for v in pair] \
                if isinstance(n, yaml.MappingNode) else []
            sizes[id(n)] = min(1 + sum(size(c) for c in children), 10 * MAX_YAML_VALUES)
        return sizes[id(n)]

    if node is not None and size(node) > MAX_YAML_VALUES:
        raise yaml.YAMLError(f"the document expands to more than {MAX_YAML_VALUES:,} values through its aliases "
                             "(&anchor / *alias); a recipe needs a few hundred. Write the values out.")
    return yaml.safe_load(text)


def load_yaml(path: str | Path) -> dict:
    """Read a recipe file into a mapping, with input paths made relative to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"file not found: {path}. Pass a recipe file or a name from `peft-hub recipes list`."], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([f"cannot read {path}: {exc}"], str(path)) from None
    try:
        data = safe_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError([f"{where}invalid YAML: {problem}"], str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([f"the top level must be a mapping of sections (task, method, ...), got {type(data).__name__}"], str(path))
    _resolve_relative(data, path.parent)
    return data


def _resolve_relative(data: dict, base: Path) -> None:
    if isinstance(data.get("stages"), dict):
        for stage in data["stages"].values():
            if isinstance(stage, dict):
                _resolve_relative(stage, base)
    section = data.get("data")
    if isinstance(section, dict):
        for key in ("path", "train", "validation", "test"):
            value = section.get(key)
            if isinstance(value, list):
                section[key] = [str((base / v).resolve()) if isinstance(v, str) and not os.path.isabs(v) and (base / v).exists() else v for v in value]
            elif isinstance(value, str) and not os.path.isabs(value) and (base / value).exists():
                section[key] = str((base / value).resolve())
    for section, keys in (("teacher", ("run", "unlabeled")), ("self_train", ("unlabeled",))):  # files beside the recipe
        found = data.get(section)
        for key in keys if isinstance(found, dict) else ():
            value = found.get(key)
            if isinstance(value, str) and not os.path.isabs(value) and (base / value).exists():
                found[key] = str((base / value).resolve())
    for component in ("task", "objective", "method"):  # options naming files, e.g. objective.options.sts
        options = (data.get(component) or {}).get("options") if isinstance(data.get(component), dict) else None
        for key, value in (options.items() if isinstance(options, dict) else ()):
            if isinstance(value, str) and "/" in value and not os.path.isabs(value) and (base / value).exists():
                options[key] = str((base / value).resolve())
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        candidate = base / model["name"]
        if not os.path.isabs(model["name"]) and candidate.is_dir():
            model["name"] = str(candidate.resolve())


def parse_override(text: str) -> tuple[list[str], Any, bool]:
    """``"a.b=1"`` -> (["a", "b"], 1, False); ``"~a.b"`` -> (["a", "b"], None, True)."""
    if text.startswith("~"):
        key, value, delete = text[1:], None, True
    elif "=" in text:
        key, raw = text.split("=", 1)
        value, delete = safe_yaml(raw) if raw.strip() else "", False
    else:
        raise ValueError(f"override {text!r} must be KEY=VALUE (e.g. training.epochs=2) or ~KEY to delete a key")
    parts = key.strip().split(".")
    if not all(parts):
        raise ValueError(f"override {text!r} has an empty key part")
    return parts, value, delete


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of ``data`` with every override applied; collects all errors."""
    data = copy.deepcopy(data)
    errors = []
    for text in overrides:
        try:
            parts, value, delete = parse_override(text)
        except (ValueError, yaml.YAMLError) as exc:
            errors.append(str(exc))
            continue
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None and not delete:
                child = node[part] = {}
            if child is None:  # only when deleting
                errors.append(f"override {text!r}: there is no key {'.'.join(parts)} to delete (the recipe does not set {'.'.join(parts[: i + 1])})")
                break
            if not isinstance(child, dict):
                errors.append(f"override {text!r}: {'.'.join(parts[: i + 1])} is not a mapping")
                break
            node = child
        else:
            if delete:
                if parts[-1] not in node:
                    errors.append(f"override {text!r}: there is no key {'.'.join(parts)} to delete")
                else:
                    del node[parts[-1]]
            else:
                node[parts[-1]] = value
    if errors:
        raise RecipeError(errors, "overrides")
    return data


def parse_component(text: str) -> tuple[str, dict]:
    """AdapterHub-style component strings: ``"lora[r=16,alpha=32,target_modules=all-linear]"``
    -> ``("lora", {"r": 16, "alpha": 32, "target_modules": "all-linear"})``. Values are YAML, so
    ``target_modules=[query,value]`` gives a list."""
    text = text.strip()
    if "[" not in text:
        return text, {}
    if not text.endswith("]"):
        raise RecipeError([f"{text!r}: expected NAME[key=value,...] ending with ']'"], "component string")
    name, body = text[:-1].split("[", 1)
    parts, depth, current = [], 0, ""
    for char in body:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    options, errors = {}, []
    for part in filter(str.strip, parts):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            errors.append(f"{text!r}: {part.strip()!r} must be key=value")
            continue
        try:
            options[key.strip()] = safe_yaml(value) if value.strip() else ""
        except yaml.YAMLError:
            errors.append(f"{text!r}: cannot read the value of {key.strip()!r}: {value!r}")
    if errors:
        raise RecipeError(errors, "component string")
    return name.strip(), options


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``"a.b"``, creating mappings on the way (CLI flags)."""
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[last] = value


def compose(recipe: str | Path | None, flags: dict[str, Any] | None = None, overrides: list[str] | None = None) -> tuple[dict, str]:
    """Recipe file (or registered name) + CLI flags + ``key=value`` overrides -> raw mapping."""
    source = "command line"
    data: dict = {}
    if recipe is not None:
        path = Path(recipe)
        if not path.exists() and not str(recipe).endswith((".yaml", ".yml")):
            path = registry.get_recipe(str(recipe))
        data = load_yaml(path)
        source = str(path)
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        if dotted in ("method.name", "task.name") and "[" in value:
            value, component_options = parse_component(value)
            section = dotted.split(".")[0]
            set_dotted(data, f"{section}.options", {**(data.get(section, {}).get("options") or {}), **component_options})
        set_dotted(data, dotted, value)
    return apply_overrides(data, list(overrides or [])), source


# -- validation ----------------------------------------------------------------------------------


@dataclass
class Resolved:
    """A validated recipe with its components looked up and their options parsed. ``task`` is
    set for an ``adapt`` recipe, ``objective`` for a ``pretrain`` recipe."""

    recipe: Any
    method: Any
    method_options: Any
    task: Any = None
    task_options: Any = None
    objective: Any = None
    objective_options: Any = None
    #: (augmenter, its options) for each entry of the recipe's ``augment`` list, in order
    augmenters: list = dataclasses.field(default_factory=list)

    @property
    def kind(self) -> str:
        return "pretrain" if self.objective is not None else "adapt"

    @property
    def run_name(self) -> str:
        """The stem of the default run directory: ``<task>-<method>`` or ``pretrain-<objective>``."""
        return f"pretrain-{self.objective.name}" if self.kind == "pretrain" else f"{self.task.name}-{self.method.name}"

    @property
    def learning_rate(self) -> float:
        return self.recipe.training.learning_rate or self.method.default_rate(self.task)

    @property
    def primary_metric(self) -> str:
        """The metric that keeps the best epoch of an ``adapt`` run (the task's, for its options)."""
        return self.task.primary_metric_for(self.task_options)

    def to_dict(self) -> dict:
        """The fully resolved recipe (every default spelled out), as saved in a run dir."""
        out = opts.to_dict(self.recipe)
        for kind in ("task", "objective", "method"):
            if getattr(self, kind) is not None:  # a pretrain recipe may leave the method to the objective
                out[kind] = {"name": getattr(self, kind).name, "options": opts.to_dict(getattr(self, f"{kind}_options"))}
        if "augment" in out:
            out["augment"] = [{"name": a.name, "options": opts.to_dict(o)} for a, o in self.augmenters]
        out["training"]["learning_rate"] = self.learning_rate
        out["output"].pop("resume")  # how this run was started, not what it is
        return out


def _looks_like_path(value: str) -> bool:
    """A local path rather than a hub dataset id (``name`` or ``owner/name``)."""
    return (
        value.startswith((".", "/", "~"))
        or value.count("/") > 1
        or value.endswith((".txt", ".tsv", ".csv", ".jsonl", ".json", ".conll", ".iob", ".bio"))
    )


def validate(data: dict, source: str = "recipe") -> Resolved:
    """Check everything that can be checked without loading a model or data; raise all errors.

    A recipe with an ``objective`` section is a ``pretrain`` recipe, else an ``adapt`` one."""
    pretrain = "objective" in data
    recipe, errors = opts.parse(PretrainRecipe if pretrain else Recipe, data)
    found: dict[str, tuple[Any, Any]] = {}
    kinds = (("objective", registry.get_objective) if pretrain else ("task", registry.get_task), ("method", registry.get_method))
    for kind, lookup in kinds:
        section = data.get(kind)
        if kind == "method" and pretrain and section is None and "objective" in found:
            objective = found["objective"][0]  # the objective says how the encoder trains unless told
            if objective.default_method is None:
                errors.append(f"method.name: required: the objective {objective.name!r} names no default method. Give --method.")
            section = {"name": objective.default_method}
        if not isinstance(section, dict) or not isinstance(section.get("name"), str):
            continue  # the schema check above reported it
        try:
            component = lookup(section["name"])
        except PeftHubError as exc:
            errors.append(f"{kind}.name: {exc}")
            continue
        options = section.get("options") or {}
        if isinstance(options, dict):
            parsed, option_errors = opts.parse(component.Options, options, f"{kind}.options")
            errors.extend(option_errors)
            found[kind] = (component, parsed)
    section = data.get("data") if isinstance(data.get("data"), dict) else {}
    for key in ("teacher", "self_train"):
        pool = (data.get(key) if isinstance(data.get(key), dict) else {}).get("unlabeled")
        if isinstance(pool, str) and not os.path.exists(os.path.expanduser(pool)):
            errors.append(f"{key}.unlabeled: {pool!r} does not exist")
    for key in ("path", "train", "validation", "test"):
        values = section.get(key)
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str):
                continue
            if not os.path.exists(os.path.expanduser(value)) and (key != "path" or _looks_like_path(value)):
                errors.append(f"data.{key}: {value!r} does not exist (relative paths on the command line start from {os.getcwd()})")
    method, method_options = found.get("method", (None, None))
    if pretrain and method is not None:
        refusal = method.refusal("merge", method_options)
        if refusal:
            errors.append(
                f"method.name: {method.name!r} cannot be merged into the encoder ({refusal}), so its "
                "pretraining result could not serve as a --model for adapt. Use one of: "
                + ", ".join(n for n, e in registry.methods().items() if not e.obj.cannot_merge) + "."
            )
    task = found.get("task", (None, None))[0]
    if task is not None and task.encoder_decoder and method is not None:
        refusal = method.refusal("encoder-decoder", method_options)
        if refusal:
            errors.append(f"method.name: the {task.name} task trains an encoder-decoder, and {method.name!r} cannot adapt "
                          f"one: {refusal}. Use one of: " + ", ".join(
                              n for n, e in registry.methods().items() if e.obj.refusal("encoder-decoder", e.obj.Options()) is None) + ".")
    if recipe is not None and recipe.model.quantization != "none":
        refusal = method.refusal("quantized", method_options) if method is not None else None
        if refusal:
            errors.append(
                f"model.quantization: the method {method.name!r} cannot train on a {recipe.model.quantization} base: "
                f"{refusal}. Drop --quantize, or use one of: "
                + ", ".join(n for n, e in registry.methods().items() if e.obj.quantizable) + "."
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            errors.append(
                f"model.quantization: {recipe.model.quantization} needs bitsandbytes, which is not installed: "
                "pip install 'peft-hub[bnb]' (or drop --quantize)."
            )
    for tracker in recipe.training.report_to if recipe is not None else []:
        if tracker in TRACKERS and importlib.util.find_spec(TRACKERS[tracker]) is None:
            errors.append(f"training.report_to: {tracker!r} needs the {TRACKERS[tracker]} package, which is not installed: "
                          f"pip install {TRACKERS[tracker]} (or drop it from training.report_to)")
    if recipe is not None and pretrain and recipe.data.streaming and not recipe.training.max_steps:
        errors.append("training.max_steps: required with data.streaming (a stream has no length to count epochs by)")
    augmenters = _augmenters(data.get("augment"), found.get("task", (None,))[0], errors) if not pretrain else []
    if augmenters and recipe is not None and recipe.teacher.run and recipe.teacher.cache:
        errors.append("augment: with teacher.run needs teacher.cache=false (cached predictions are of the examples as "
                      "they are, not as augmented); the teacher then predicts every augmented batch")
    task = found.get("task", (None, None))
    if recipe is not None and not pretrain and recipe.teacher.run and task[0] is not None:
        refusal = task[0].teacher_refusal(task[1])
        if refusal:
            errors.append(f"teacher.run: the {task[0].name!r} task cannot learn from a teacher: {refusal}.")
    if errors:
        raise RecipeError(errors, source)
    method, method_options = found["method"]
    if pretrain:
        objective, objective_options = found["objective"]
        return Resolved(recipe, method, method_options, objective=objective, objective_options=objective_options)
    task, task_options = found["task"]
    return Resolved(recipe, method, method_options, task=task, task_options=task_options, augmenters=augmenters)


def _augmenters(section: Any, task: Any, errors: list[str]) -> list:
    """(augmenter, options) for each entry of a recipe's ``augment`` list (the schema checked its shape)."""
    found = []
    for i, entry in enumerate(section if isinstance(section, list) else []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        try:
            augmenter = registry.get_augmenter(entry["name"])
        except PeftHubError as exc:
            errors.append(f"augment[{i}].name: {exc}")
            continue
        if task is not None and task.example_shape not in augmenter.shapes:
            shape = f"whose examples are {task.example_shape!r}" if task.example_shape else "which declares no example shape"
            errors.append(f"augment[{i}]: the augmenter {augmenter.name!r} changes examples of the shape(s) "
                          f"{', '.join(map(repr, augmenter.shapes)) or '(none)'}, not the {task.name!r} task's, {shape}. "
                          "See `peft-hub augmenters list`.")
            continue
        options, option_errors = opts.parse(augmenter.Options, entry.get("options") or {}, f"augment[{i}].options")
        errors.extend(option_errors)
        found.append((augmenter, options))
    return found


STAGE_PREFIX = "stage:"


@dataclass
class Pipeline:
    """A recipe whose ``stages`` run in order; ``model.name: stage:NAME`` takes the output of an
    earlier stage (e.g. ``pretrain`` then ``adapt`` on the continued-pretrained encoder)."""

    stages: list[tuple[str, Resolved]]

    def resolved_stage(self, index: int, outputs: dict[str, str]) -> Resolved:
        """Stage ``index`` with a ``stage:NAME`` model replaced by that stage's output directory."""
        name, resolved = self.stages[index]
        model = resolved.recipe.model.name
        if model.startswith(STAGE_PREFIX):
            resolved.recipe.model.name = outputs[model[len(STAGE_PREFIX):]]
        return resolved


def validate_any(data: dict, source: str = "recipe") -> Resolved | Pipeline:
    """:func:`validate` for a one-run recipe, or every stage of a ``stages`` recipe."""
    if "stages" not in data:
        return validate(data, source)
    stages = data["stages"]
    extra = sorted(set(data) - {"stages", "description"})
    if not isinstance(stages, dict) or not stages:
        raise RecipeError(["stages: expected a mapping of stage name -> recipe"], source)
    errors = [f"{key}: unknown key next to stages (put it inside a stage)" for key in extra]
    done: dict[str, Resolved] = {}
    result = []
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            errors.append(f"stages.{name}: expected a recipe mapping")
            continue
        section = stage.get("model")  # a malformed section is reported by validate() below, as for any recipe
        model = section.get("name", "") if isinstance(section, dict) else ""
        if isinstance(model, str) and model.startswith(STAGE_PREFIX):
            ref = model[len(STAGE_PREFIX):]
            if ref not in done and ref in stages and list(stages).index(ref) < list(stages).index(name):
                pass  # that stage is invalid and already reported
            elif ref not in done:
                errors.append(f"stages.{name}.model.name: {model!r} names no earlier stage (earlier: {', '.join(done) or 'none'})")
            elif done[ref].kind != "pretrain":
                errors.append(f"stages.{name}.model.name: stage {ref!r} is an adapt run, not a model")
            elif not done[ref].recipe.output.dir:
                errors.append(f"stages.{ref}.output.dir: required, because stage {name!r} uses its output")
        try:
            resolved = validate(stage, f"{source}, stage {name!r}")
        except RecipeError as exc:
            errors.extend(f"stages.{name}.{e}" for e in exc.errors)
            continue
        done[name] = resolved
        result.append((name, resolved))
    if errors:
        raise RecipeError(errors, source)
    return Pipeline(result)


def dump(resolved: Resolved) -> str:
    return yaml.safe_dump(resolved.to_dict(), sort_keys=False, allow_unicode=True)


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copy the registered recipe ``name`` to ``dest`` (a file, or a folder to put it in) to edit."""
    import shutil

    source = registry.get_recipe(name)
    target = Path(dest)
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise RecipeError(f"{target} exists; remove it or choose another destination.")
    shutil.copyfile(source, target)
    return target
