"""LoRA (Hu et al., 2021) through peft: low-rank updates ``B @ A`` added to chosen linear layers, and
the variants peft offers as LoRA options: rsLoRA's scaling, DoRA's magnitude vectors, and the
initialisations gaussian, orthogonal, OLoRA, PiSSA, EVA (from the training data's activations) and
LoftQ (against a 4-bit base's quantization error).

Where the updates go is found from the architecture (``peft_hub.target_modules``): every attention
projection and feed-forward layer of every encoder layer, whatever the family calls them."""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from typing import Literal

import peft_hub
from peft_hub import option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

TARGETS_HELP = ("'auto': every attention projection and feed-forward layer of every encoder layer, found from the "
                "architecture of any family; 'attention': the attention ones only; 'all-linear': every linear layer but "
                "the head; or module names (a name or a dotted suffix, checked: they must reach every layer).")
TARGET_WORDS = ("auto", "attention", "attention+ffn", "all-linear")
#: initialisations that change the base weights while training (the saved adapter is converted
#: to a plain LoRA on the untouched base, of twice the rank)
RESIDUAL_INITS = ("pissa", "olora")


@dataclass
class Targets(peft_hub.Options):
    """Where a method of peft goes: the options every LoRA-like method here shares."""

    target_modules: list[str] | str = option("auto", TARGETS_HELP)
    layers_to_transform: list[int] | None = option(None, "Encoder layers to adapt (0 = the bottom one); unset: all.")

    def check(self) -> list[str]:
        return check_targets(self.target_modules)


@dataclass
class LoraOptions(Targets):
    r: int = option(16, "Rank of the update matrices: higher = more capacity and memory.", low=1)
    alpha: float = option(32.0, "Scaling numerator: the update is multiplied by alpha / r (alpha / sqrt(r) with use_rslora).")
    dropout: float = option(0.1, "Dropout on the LoRA input.", low=0, below=1)
    bias: Literal["none", "all", "lora_only"] = option("none", "Which biases train.")
    use_rslora: bool = option(False, "rsLoRA (Kalajdzievski, 2023): scale by alpha / sqrt(r), stable at high ranks.")
    use_dora: bool = option(False, "DoRA (Liu et al., 2024): learn each weight's magnitude apart from its direction "
                                   "(slower; merges; cannot share a serving batch with other adapters).")
    init_lora_weights: Literal["default", "gaussian", "orthogonal", "olora", "pissa", "eva", "loftq"] = option(
        "default", "How A and B start: default (B = 0, A Kaiming), gaussian, orthogonal, olora / pissa (from the "
                   "weights' QR / SVD; saved converted to a plain LoRA of rank 2r), eva (from the SVD of the training "
                   "data's activations, ranks redistributed), loftq (against a 4-bit base's quantization error; needs "
                   "--quantize 4bit).")
    eva_rho: float = option(2.0, "EVA: how far ranks may move between layers (1: every layer keeps r).", low=1)

    def check(self) -> list[str]:
        if super().check():
            return super().check()
        if self.use_dora and self.init_lora_weights in ("eva", "loftq", *RESIDUAL_INITS):
            return [f"use_dora: DoRA's magnitudes start from the base weights; init_lora_weights={self.init_lora_weights!r} "
                    "changes how the update starts, and peft does not combine them. Use one of the two."]
        return []


def check_targets(value: list[str] | str) -> list[str]:
    """The errors of a ``target_modules`` option of the LoRA family (empty: none)."""
    if isinstance(value, list) and not value:
        return ["target_modules: must name at least one module, or be 'auto'"]
    if isinstance(value, str) and value not in TARGET_WORDS:
        return [f"target_modules: {value!r} is none of {', '.join(TARGET_WORDS)}; give module names as a list"]
    return []


class FullPrecisionOnly(peft_hub.PeftMethod):
    """A peft method without 8-bit/4-bit layers (VeRA, LoHa, LoKr, OFT, BOFT here)."""

    quantizable = False

    def refusal(self, capability, options):
        if capability == "quantized":
            return f"peft has no 8-bit/4-bit {self.name} layers"
        return super().refusal(capability, options)


class Lora(peft_hub.PeftMethod):
    name = "lora"
    description = "LoRA: trainable low-rank updates on linear layers (peft); rsLoRA, DoRA, PiSSA, OLoRA, EVA, LoftQ as options."
    Options = LoraOptions
    default_learning_rate = 1e-3  # benchmarks/RESULTS.md, "Defaults across datasets": 2e-3 collapsed SST-2 at 3 epochs
    #: for tasks that label every token (NER), where 1e-3 trails full fine-tuning: benchmarks/RESULTS.md,
    #: "LoRA's NER gap to full fine-tuning"; None: default_learning_rate for every task
    tagging_learning_rate: float | None = 2e-3
    mixed_batches = True  # peft's LoRA layers take a per-row adapter_names list
    combinations = ("linear", "ties", "dare_linear", "dare_ties", "svd", "cat")  # peft's add_weighted_adapter

    def refusal(self, capability, options):
        if capability == "mixed_batches" and options.use_dora:
            return "peft cannot run DoRA adapters with others in one forward pass (use_dora)"
        if capability == "quantized" and options.init_lora_weights in RESIDUAL_INITS:
            return f"init_lora_weights={options.init_lora_weights!r} rewrites the base weights, which a quantized base cannot take"
        return super().refusal(capability, options)

    def default_rate(self, task):
        if task is not None and task.token_labels and self.tagging_learning_rate:
            return self.tagging_learning_rate
        return self.default_learning_rate

    def peft_config(self, options, task, model):
        from peft import LoraConfig

        init = options.init_lora_weights
        extra = {}
        if init == "eva":
            from peft import EvaConfig

            extra["eva_config"] = EvaConfig(rho=options.eva_rho)
        return LoraConfig(
            task_type=task.peft_task_type,
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=self.targets(model, task, options),
            bias=options.bias,
            use_rslora=options.use_rslora,
            use_dora=options.use_dora,
            # loftq starts as default: prepare() fits A and B to the quantization error
            init_lora_weights={"default": True, "loftq": True}.get(init, init),
            **extra,
        )

    def apply(self, model, options, task):
        if options.init_lora_weights == "loftq" and not _is_4bit(model):
            raise peft_hub.ModelError("init_lora_weights=loftq fits LoRA to the error of a 4-bit base's quantization: "
                                      "run with --quantize 4bit (or choose another init_lora_weights).")
        model = super().apply(model, options, task)
        if options.init_lora_weights in RESIDUAL_INITS:
            # peft converts the trained adapter into a plain LoRA on the untouched base at save,
            # from the adapter as it started; keep that start while the model lives
            initial = tempfile.mkdtemp(prefix="peft-hub-lora-start-")
            weakref.finalize(model, shutil.rmtree, initial, True)
            config = model.peft_config["default"]
            config.init_lora_weights, init = True, config.init_lora_weights
            model.save_pretrained(initial, safe_serialization=True)
            config.init_lora_weights = init
            model.peft_hub_initial_adapter = initial
        return model

    def prepare(self, model, options, batches):
        if options.init_lora_weights == "eva":
            from peft import initialize_lora_eva_weights

            initialize_lora_eva_weights(model, dataloader=_Replayable(batches, 8), prepare_model_inputs_fn=_real_tokens,
                                        prepare_layer_inputs_fn=_token_rows)
        elif options.init_lora_weights == "loftq":
            _loftq(model)

    def save(self, model, directory):
        initial = getattr(model, "peft_hub_initial_adapter", None)
        if initial is None:
            return super().save(model, directory)
        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import load_file, save_file

        with warnings.catch_warnings():  # the conversion loads the start beside the adapter, which peft warns of
            warnings.filterwarnings("ignore", message="(PiSSA|OLoRA) changes the base weights")
            model.save_pretrained(str(directory), safe_serialization=True, path_initial_model_for_weight_conversion=initial)
        # peft's conversion keeps only the LoRA matrices: the trained head goes back beside them
        file = directory / "adapter_model.safetensors"
        converted = load_file(str(file))
        converted.update({k: v.contiguous() for k, v in get_peft_model_state_dict(model).items() if "lora_" not in k})
        save_file(converted, str(file), metadata={"format": "pt"})


class _Replayable:
    """The first ``count`` training batches, iterable more than once (EVA passes over them until
    its SVDs converge)."""

    def __init__(self, batches, count):
        self.batches = [batch for _, batch in zip(range(count), batches)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def _real_tokens(model_input, peft_config):
    """The (row, position) pairs of the batch's real tokens, by its attention mask. peft's own choice
    also drops positions whose label is -100, reading ``labels`` as one label per token, which only
    token tasks have (a classification batch's labels are one per row, and EVA crashed on them)."""
    import torch

    ids = model_input["input_ids"]
    return model_input.get("attention_mask", torch.ones_like(ids)).bool().nonzero()


def _token_rows(layer_input, tokens, layer_name):
    """The rows of a layer's input that EVA decomposes: those of real (non-padding) tokens, where
    ``tokens`` (peft's (row, position) pairs) index the input; every row of any other input (DeBERTa
    passes its relative-position embeddings through the same projections)."""
    x = layer_input[0] if isinstance(layer_input, (tuple, list)) else layer_input
    if x.dim() == 3 and len(tokens) and x.shape[0] == int(tokens[:, 0].max()) + 1 and x.shape[1] > int(tokens[:, 1].max()):
        return x[tokens.T.unbind()]
    return x.reshape(-1, x.shape[-1])


def _is_4bit(model) -> bool:
    return any(type(m).__name__ == "Linear4bit" for m in model.modules())


def _loftq(model) -> None:
    """LoftQ (Li et al., 2023), one step: each 4-bit LoRA layer starts at the best rank-r fit of
    what quantization took from its weight (full - dequantized, by SVD), so that base + LoRA starts
    nearer the full-precision model. peft's ``replace_lora_weights_loftq`` does this on CUDA only
    and leaves out LoRA's scaling (alpha / r); here on the model's own device, scaled."""
    import bitsandbytes as bnb
    import torch
    from peft.tuners.lora import Linear4bit
    from safetensors import safe_open

    path = _weights_file(model)
    prefix = model.get_base_model().base_model_prefix + "."
    with safe_open(path, framework="pt") as weights, torch.no_grad():
        stored = set(weights.keys())
        for name, module in model.named_modules():
            if not isinstance(module, Linear4bit):
                continue
            key = name.removeprefix("base_model.model.") + ".weight"
            key = key if key in stored else key.removeprefix(prefix)  # saved as the bare encoder
            if key not in stored:
                raise peft_hub.ModelError(f"init_lora_weights=loftq: {path} has no weight {key!r} for the 4-bit layer "
                                          f"{name}. Is --model the directory the base was quantized from?")
            quantized = module.weight
            full = weights.get_tensor(key).to(quantized.device, torch.float32)
            error = full - bnb.functional.dequantize_4bit(quantized.data, quantized.quant_state).float()
            U, S, Vh = torch.linalg.svd(error, full_matrices=False)
            r, scaling = module.r["default"], module.scaling["default"]
            root = (S[:r] / scaling).sqrt()  # B @ A * scaling = U_r S_r Vh_r
            A, B = module.lora_A["default"].weight, module.lora_B["default"].weight
            A.copy_((root[:, None] * Vh[:r]).to(A.dtype))
            B.copy_((U[:, :r] * root).to(B.dtype))


def _weights_file(model) -> str:
    """The safetensors file of the base model's weights (LoftQ reads the unquantized ones)."""
    from pathlib import Path

    path = Path(model.config.name_or_path) / "model.safetensors"
    if not path.is_file():
        raise peft_hub.ModelError(f"init_lora_weights=loftq reads the base's unquantized weights from {path}, which is "
                                  "absent (a sharded or .bin checkpoint). Save the base with safetensors in one file.")
    return str(path)


@peft_hub.hookimpl
def register_methods(register):
    register(Lora())
