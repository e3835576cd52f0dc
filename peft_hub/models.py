"""Base model and tokenizer loading: a registered alias, a local directory or a hub id.

Weights load only as safetensors and ``trust_remote_code`` stays off unless the recipe turns it on.
"""

from __future__ import annotations

import json

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import registry
from .errors import ModelError


def quiet_libraries() -> None:
    """Silence the chatter of transformers/bitsandbytes that users cannot act on."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # peft's prompt-learning methods (prefix) drop segment ids, in training and prediction alike
    warnings.filterwarnings("ignore", message="Token type ids are not supported for parameter efficient tuning")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # per-tensor "Loading weights" bars


def resolve(name: str) -> str:
    """A registered alias -> its directory; an existing directory -> itself; else a hub id."""
    aliases = registry.models()
    if name in aliases:
        return str(aliases[name].obj())
    expanded = os.path.expanduser(name)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise ModelError(f"Model {name!r} is a file; pass the directory that holds config.json and the weights.")
        if not os.path.exists(os.path.join(expanded, "config.json")):
            raise ModelError(
                f"{name!r} is not a model directory: it has no config.json. Pass a directory written by "
                "`save_pretrained` (or a `peft-hub pretrain` output), a hub id, or an alias: "
                + ", ".join(sorted(aliases))
            )
        return str(Path(expanded).resolve())
    if name.startswith((".", "/", "~")):
        raise ModelError(f"Model directory {name!r} does not exist. Known aliases: {', '.join(sorted(aliases))}.")
    return name  # a hub id


def _translate(name: str, what: str, exc: Exception) -> ModelError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = (
        " HF_HUB_OFFLINE=1 is set: hub ids only work if the model is already in the local cache."
        if offline
        else " If it is a hub id, check the spelling and the network; otherwise pass a local directory."
    )
    return ModelError(f"Cannot load the {what} of {name!r}: {type(exc).__name__}: {exc}.{hint}")


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise _translate(path, "tokenizer", exc) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"The tokenizer of {path!r} has no fast (Rust) version; peft-hub needs one to align labels "
            "to words. Convert it with `tokenizers` or use a model that ships tokenizer.json."
        )
    config = Path(path) / "config.json"  # the model's position table is the real length limit
    positions = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings") if config.is_file() else None
    if isinstance(positions, int) and positions < tokenizer.model_max_length:
        tokenizer.model_max_length = positions
    if (Path(path) / TARGET_TOKENIZER).is_dir():
        set_target_tokenizer(tokenizer, load_tokenizer(str(Path(path) / TARGET_TOKENIZER)))
    return tokenizer


#: where a tokenizer's target-side tokenizer is saved, below its own directory
TARGET_TOKENIZER = "target"


def target_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer that writes a model's outputs: the one a generation task attached with
    :func:`set_target_tokenizer` (a vocabulary of the target language), else ``tokenizer`` itself."""
    return getattr(tokenizer, "peft_hub_target", None) or tokenizer


def set_target_tokenizer(tokenizer: Any, target: Any) -> None:
    """Give ``tokenizer`` (which reads the inputs) a ``target`` tokenizer for the outputs: saved with
    it (:func:`save_tokenizer`, in ``target/``) and loaded with it (:func:`load_tokenizer`)."""
    tokenizer.peft_hub_target = target


def save_tokenizer(tokenizer: Any, directory: str | Path) -> None:
    """``tokenizer.save_pretrained(directory)``, with its target tokenizer, if any, in ``target/``."""
    tokenizer.save_pretrained(str(directory))
    target = target_tokenizer(tokenizer)
    if target is not tokenizer:
        target.save_pretrained(str(Path(directory) / TARGET_TOKENIZER))


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one sequence: ``([CLS], [SEP])`` for BERT,
    ``(<s>, </s>)`` for RoBERTa. (Fast tokenizers of transformers 5 have no
    ``build_inputs_with_special_tokens``.)"""
    probe = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next(i for i in range(len(full)) if full[i : i + len(probe)] == probe)
    return full[:start], full[start + len(probe):]


def load_pretrained(loader: Callable[..., Any], path: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(path, **kwargs)`` with safetensors only and readable errors."""
    kwargs.setdefault("use_safetensors", True)
    kwargs.setdefault("trust_remote_code", False)
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise _translate(path, "weights", exc) from None


def load_with_head(auto_class: Any, path: str, labels: list[str], **kwargs: Any) -> Any:
    """A classification-style model (``AutoModelFor...``) with a fresh head for ``labels``."""
    return load_pretrained(
        auto_class, path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, **kwargs,
    )


def checkpoint_names(path: str) -> set[str]:
    """Names of the tensors stored in a local model directory's safetensors files (headers only)."""
    from safetensors import safe_open

    names: set[str] = set()
    for file in Path(path).glob("*.safetensors") if os.path.isdir(path) else []:
        with safe_open(str(file), "pt") as stored:
            names |= set(stored.keys())
    return names


def reset_heads(model: Any, heads: list[str], path: str) -> list[str]:
    """Re-initialise the head modules whose weights the checkpoint at ``path`` holds, so a head
    trained for something else (a pretraining objective's ``classifier``, another task's head of
    the same size) never passes for the task's fresh one. Returns the modules reset."""
    import torch

    held = checkpoint_names(path)
    stale = [h for h in heads if any(f"{h}.{p}" in held for p, _ in model.get_submodule(h).named_parameters())]
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():  # transformers' own _init_weights skips weights it has loaded
        for module in (m for name in stale for m in model.get_submodule(name).modules()):
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return stale


def copy_shared(model: Any) -> None:
    """Give each module its own copy of a parameter it shares with another module (a generation
    run's ``decoder=shared``), the model's own ties (output and input embeddings) restored after:
    merging then folds each module's update into its own copy, and transformers writes no weights
    shared beyond its ties."""
    import torch

    seen, copied = set(), False
    for module in model.modules():
        for name, parameter in list(module.named_parameters(recurse=False)):
            if id(parameter) in seen:
                setattr(module, name, torch.nn.Parameter(parameter.detach().clone(), requires_grad=parameter.requires_grad))
                copied = True
            seen.add(id(parameter))
    if copied:
        (model.get_base_model() if hasattr(model, "get_base_model") else model).tie_weights()


def check_vocab(tokens: int, model: Any, model_path: str) -> None:
    """Refuse a tokenizer of ``tokens`` tokens that does not fit the model's embeddings: more tokens
    than rows, or fewer than half of them (transformers builds a near-empty tokenizer for a model
    directory without tokenizer files, and everything would become ``[UNK]``)."""
    vocab = getattr(model.config, "vocab_size", None)
    if vocab is not None and tokens > vocab:
        raise ModelError(
            f"The tokenizer of {model_path} has {tokens} tokens but the model's embeddings hold "
            f"{vocab}: they do not belong together. Use the tokenizer saved with the model."
        )
    if vocab is not None and tokens < vocab // 2:
        raise ModelError(
            f"The tokenizer of {model_path} has only {tokens} tokens for the model's {vocab} embeddings: it is not "
            "the model's tokenizer (is tokenizer.json / vocab.txt missing from the directory?). Copy the tokenizer "
            "files the model was trained with next to its weights."
        )


def model_outputs(model: Any, batches: Any) -> Any:
    """``model``'s outputs for each collated batch, in eval mode and without gradients, the batch
    moved to the model's device: the loop every task's ``predict`` runs."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    for batch in batches:
        with torch.no_grad():
            yield model(**{k: v.to(device) for k, v in batch.items()})


def unknown_share(features: list[dict], tokenizer: Any, sample: int = 200) -> float:
    """Share of ``[UNK]`` among the non-special tokens of the first ``sample`` features."""
    unk, special = tokenizer.unk_token_id, set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    ids = [i for f in features[:sample] for i in f["input_ids"] if i not in special]
    return sum(i == unk for i in ids) / len(ids) if ids and unk is not None else 0.0


def quantization_kwargs(kind: str, keep: list[str]) -> dict:
    """``from_pretrained`` keyword arguments that load the base in 8-bit or 4-bit (NF4)."""
    if kind == "none":
        return {}
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise ModelError(f"--quantize {kind} needs bitsandbytes: pip install 'peft-hub[bnb]' ({exc}).") from None
    import torch

    if kind == "8bit":
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(keep))
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32,
            llm_int8_skip_modules=list(keep),
        )
    return {"quantization_config": config}


def prepare_quantized(model: Any, kind: str) -> Any:
    """Make a k-bit model trainable (peft's recipe) and apply the CPU rules of bitsandbytes."""
    if kind == "none":
        return model
    import bitsandbytes as bnb
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    for module in model.modules():
        # On CPUs with avx512_bf16, a 4-bit layer used without grad (evaluation) breaks the next
        # training forward ("a view of a leaf Variable ... in-place operation"); its fp32 path works.
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
    return model


def weight_memory_mb(model: Any) -> float:
    """Bytes held by the model's parameters and buffers, in MiB (quantized weights count as stored)."""
    return round(model.get_memory_footprint() / 2**20, 1)
