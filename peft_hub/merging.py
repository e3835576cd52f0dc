"""Combining trained adapters of one task and label set into one (``peft-hub merge --adapters``).

The adapters' layers are combined by peft's weighted-adapter merging (``linear``, ``ties``,
``dare_linear``, ``dare_ties``, ``svd``, ``cat``); their task heads, which peft leaves alone, are
combined here the same way (a weighted sum, or TIES / DARE on the head tensors with the same
weights and density). The result is a normal run directory (or hub entry) that every command loads.

    peft-hub merge --adapters conll-a,conll-b --combination ties --density 0.5 --output conll-ab
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .errors import PeftHubError
from .tasks import build_model

COMBINATIONS = ("linear", "ties", "dare_linear", "dare_ties", "svd", "cat")  # peft's; each method says which it offers
NEEDS_DENSITY = {"ties", "dare_linear", "dare_ties"}


class MergeError(PeftHubError):
    """Adapters that cannot be combined, with the reason."""


def _sources(items: list[str]) -> list[Any]:
    """The runs to combine (:class:`peft_hub.finished.RunRecord`), checked to be of one task, method,
    base model and label set."""
    from . import finished, hub

    sources = [finished.open_run(item) for item in items]
    prints = [hub.trained_fingerprint(run) for run in sources]
    first = sources[0]
    for other, print_ in zip(sources[1:], prints[1:]):
        for what, mine, theirs in (("task", first.info.get("task"), other.info.get("task")),
                                   ("method", first.info.get("method"), other.info.get("method")),
                                   ("base model (fingerprint)", prints[0], print_)):
            if mine != theirs:
                raise MergeError(f"{first.directory} and {other.directory} differ in {what}: {mine} vs {theirs}. "
                                 "Only adapters of one task, method and base model combine.")
        difference = finished.label_difference(first.labels, other.labels)
        if difference:
            raise MergeError(f"{first.directory} and {other.directory} have different label sets ({difference}): "
                             "their heads cannot combine. Train them on one label set.")
    return sources


def _weights(weights: list[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise MergeError(f"--weights has {len(weights)} values for {count} adapters: give one weight per adapter.")
    if not all(math.isfinite(w) for w in weights) or not any(weights):
        raise MergeError(f"--weights must be finite numbers, not all zero; got {weights}.")
    return list(weights)


def combine_tensors(tensors: list[Any], weights: list[float], combination: str, density: float) -> Any:
    """One head tensor from the adapters' versions of it, as the combination does for layers."""
    import torch
    from peft.utils import merge_utils

    stacked = [t.float() for t in tensors]
    w = torch.tensor(weights, dtype=torch.float32)
    if combination == "ties":
        merged = merge_utils.ties(stacked, w, density)
    elif combination == "dare_linear":
        merged = merge_utils.dare_linear(stacked, w, density)
    elif combination == "dare_ties":
        merged = merge_utils.dare_ties(stacked, w, density)
    else:  # linear, svd, cat: the weighted sum (a head has no low-rank factors to concatenate or decompose)
        merged = merge_utils.task_arithmetic(stacked, w)
    return merged.to(tensors[0].dtype)


def names(adapters: str) -> list[str]:
    """``--adapters A,B,...`` as a list of run directories or hub names."""
    return [a.strip() for a in adapters.split(",") if a.strip()]


def parse_weights(weights: str | None) -> list[float] | None:
    """``--weights 0.7,0.3`` as numbers (None: equal weights)."""
    try:
        return [float(w) for w in weights.split(",")] if weights else None
    except ValueError:
        raise MergeError(f"--weights {weights[:80]!r} is not a comma-separated list of numbers.") from None


def combine(items: list[str], output: str, combination: str = "linear", weights: list[float] | None = None,
            density: float = 0.5, overwrite: bool = False) -> Path:
    """Combine the adapters ``items`` (run directories or hub names) into ``output``: a hub name,
    or a directory (any path with a '/'). Returns where the result lies."""
    from safetensors.torch import load_file, save_file

    from . import hub, models, rundir

    if len(items) < 2:
        raise MergeError(f"--adapters names {len(items)} adapter(s); combining needs at least two, e.g. --adapters a,b.")
    if combination not in COMBINATIONS:
        raise MergeError(f"--combination {combination!r} is not one of {', '.join(COMBINATIONS)}.")
    if combination in NEEDS_DENSITY and not 0 < density <= 1:
        raise MergeError(f"--density must be in (0, 1] for {combination}; got {density}.")
    weights = _weights(weights, len(items))
    to_hub = "/" not in output and not Path(output).exists()
    if to_hub:
        hub.check_name(output)
        hub.refuse_taken(output, overwrite)
    else:
        rundir.prepare(Path(output), overwrite)
    sources = _sources(items)
    first = sources[0]
    task, method = first.resolved.task, first.resolved.method
    if combination not in method.combinations:
        offers = ", ".join(method.combinations) if method.combinations else "none: peft combines weighted LoRA adapters"
        raise MergeError(f"The {method.name!r} method cannot combine adapters with {combination!r} (it offers: {offers}).")

    models.quiet_libraries()
    from peft import PeftConfig, get_peft_model, set_peft_model_state_dict

    model = build_model(task, first.base, first.labels, first.resolved.task_options,
                        models.load_tokenizer(str(first.directory / "tokenizer")))
    heads = task.head_modules(model)
    names = [f"source{i}" for i in range(len(sources))]
    parts = [load_file(str(s.directory / "adapter" / "adapter_model.safetensors")) for s in sources]
    peft_model = None
    for name, source, part in zip(names, sources, parts):
        try:
            config = PeftConfig.from_pretrained(str(source.directory / "adapter"))
        except (OSError, ValueError) as exc:
            raise MergeError(f"{source.directory}'s adapter is not a peft adapter ({type(exc).__name__}); "
                             f"the {method.name!r} method cannot combine adapters.") from None
        # peft refuses to combine adapters with heads (modules_to_save): the heads are combined below
        saved_heads, task_type = config.modules_to_save, config.task_type
        config.modules_to_save = config.task_type = None
        if peft_model is None:
            peft_model = get_peft_model(model, config, adapter_name=name)
        else:
            peft_model.add_adapter(name, config)
        layers = {k: v for k, v in part.items() if not any(k.startswith(f"base_model.model.{h}.") for h in heads)}
        set_peft_model_state_dict(peft_model, layers, adapter_name=name)
    try:
        peft_model.add_weighted_adapter(names, weights, "default", combination_type=combination,
                                        density=density if combination in NEEDS_DENSITY else None)
    except ValueError as exc:  # e.g. linear over adapters of different ranks
        raise MergeError(f"peft cannot combine these adapters with {combination!r}: {exc} "
                         "(svd and cat take adapters of different ranks).") from None
    merged_config = peft_model.peft_config["default"]
    merged_config.modules_to_save, merged_config.task_type = saved_heads, task_type  # loading puts the heads back
    with warnings.catch_warnings():  # "adapter source0 was active ...": the combined one is what is saved
        warnings.simplefilter("ignore")
        for name in names:
            peft_model.delete_adapter(name)

    scratch = Path(tempfile.mkdtemp(prefix="peft-hub-merge-"))
    out = scratch / "run"  # moved into place once complete
    try:
        peft_model.save_pretrained(str(out / "adapter"), safe_serialization=True)
        weights_file = out / "adapter" / "adapter_model.safetensors"
        state = load_file(str(weights_file))
        head_keys = [k for k in parts[0] if any(k.startswith(f"base_model.model.{h}.") for h in heads)]
        for key in head_keys:
            if any(key not in part for part in parts[1:]):
                raise MergeError(f"An adapter lacks its head weight {key}: it was not saved by peft-hub.")
            state[key] = combine_tensors([part[key] for part in parts], weights, combination, density).contiguous()
        save_file(state, str(weights_file), metadata={"format": "pt"})
        shutil.copytree(first.directory / "tokenizer", out / "tokenizer")
        (out / "labels.json").write_text(json.dumps(first.labels, indent=2) + "\n", encoding="utf-8")
        merged_from = [{"name": item, "directory": str(s.directory.resolve())} for item, s in zip(items, sources)]
        metrics = {"primary_metric": task.primary_metric_for(first.resolved.task_options), "merged_from": merged_from,
                   "combination": combination, "weights": weights, "density": density if combination in NEEDS_DENSITY else None}
        rundir.finish(out, first.resolved, metrics, {"task": task.name, "method": method.name,
                                                    "base_model": first.info["base_model"], "merged_from": merged_from},
                      metrics["primary_metric"])
        if to_hub:
            return hub.add(out, output, ("merged",), overwrite).path
        rundir.prepare(Path(output), overwrite)  # (again: removes what an earlier run left there)
        shutil.rmtree(output, ignore_errors=True)
        shutil.move(str(out), output)
        return Path(output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
