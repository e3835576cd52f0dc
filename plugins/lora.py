"""LoRA (Hu et al., 2021) through peft: low-rank updates ``B @ A`` added to chosen linear layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import peft_hub
from peft_hub import option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class LoraOptions(peft_hub.Options):
    r: int = option(16, "Rank of the update matrices: higher = more capacity and memory.", low=1)
    alpha: float = option(32.0, "Scaling numerator: the update is multiplied by alpha / r.")
    dropout: float = option(0.1, "Dropout on the LoRA input.", low=0, below=1)
    target_modules: list[str] | str = option(
        ["query", "key", "value", "dense"],
        "Module names (suffixes) to adapt, or 'all-linear'. The default covers every linear layer of a BERT-style encoder.",
    )
    bias: Literal["none", "all", "lora_only"] = option("none", "Which biases train.")

    def check(self) -> list[str]:
        if isinstance(self.target_modules, list) and not self.target_modules:
            return ["target_modules: must name at least one module, or be 'all-linear'"]
        return []


class Lora(peft_hub.PeftMethod):
    name = "lora"
    description = "LoRA: trainable low-rank updates on linear layers (peft)."
    Options = LoraOptions
    default_learning_rate = 1e-3  # benchmarks/RESULTS.md, "Defaults across datasets": 2e-3 collapsed SST-2 at 3 epochs
    mixed_batches = True  # peft's LoRA layers take a per-row adapter_names list
    combinations = ("linear", "ties", "dare_linear", "dare_ties", "svd", "cat")  # peft's add_weighted_adapter

    def peft_config(self, options, task, model):
        from peft import LoraConfig

        return LoraConfig(
            task_type=task.peft_task_type,
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=options.target_modules,
            bias=options.bias,
        )


@peft_hub.hookimpl
def register_methods(register):
    register(Lora())
