"""LoRA+ (Hayou, Ghosh and Yu, 2024): LoRA whose ``B`` matrices learn ``lr_ratio`` times faster than
its ``A`` matrices, through peft's LoRA+ optimizer. Everything else is LoRA's (options, merging,
combining, mixed serving); only the optimizer differs, which a method gives through the contract's
``optimizer`` hook."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import option
from peft_hub_plugins.lora import Lora, LoraOptions

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class LoraPlusOptions(LoraOptions):
    lr_ratio: float = option(16.0, "Learning rate of the B matrices / that of the A matrices (the paper's lambda; >= 1).", low=1)
    lr_embedding: float = option(1e-6, "Learning rate of LoRA on embedding layers, if any are targeted.", low=0)


class LoraPlus(Lora):
    name = "loraplus"
    description = "LoRA+: LoRA with its B matrices at lr_ratio x the rate of A (peft's LoRA+ optimizer)."
    Options = LoraPlusOptions
    default_learning_rate = 5e-4  # the paper: about half of LoRA's rate, as B learns 16x faster
    tagging_learning_rate = None  # not measured for LoRA+: the same rate for every task

    def optimizer(self, model, options, learning_rate, weight_decay):
        import torch
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(model, torch.optim.AdamW, lr=learning_rate, loraplus_lr_ratio=options.lr_ratio,
                                         loraplus_lr_embedding=options.lr_embedding, loraplus_weight_decay=weight_decay)


@peft_hub.hookimpl
def register_methods(register):
    register(LoraPlus())
