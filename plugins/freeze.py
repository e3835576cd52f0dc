"""Partial fine-tuning: only the top K encoder layers and the task head train."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import StateDictMethod, anatomy, encoder_layers, option, train_head, train_only

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class FreezeOptions(peft_hub.Options):
    top_layers: int = option(2, "How many of the top encoder layers train (0: only the head).", low=0)


class Freeze(StateDictMethod):
    name = "freeze"
    description = "Partial fine-tuning: the top K encoder layers and the head train, the rest is frozen."
    Options = FreezeOptions
    default_learning_rate = 1e-3  # benchmarks/lr_sweep.sh
    cannot_merge = None
    quantizable = False  # it updates base weights

    def apply(self, model, options, task):
        layers = encoder_layers(model, task.head_modules(model))
        if options.top_layers > len(layers):
            parts = anatomy(model, task.head_modules(model))
            shared = (f" ({parts.architecture} shares the weights of {len(layers)} across its {parts.positions} positions)"
                      if parts.shared else "")
            raise peft_hub.PeftHubError(
                f"method.options.top_layers={options.top_layers}, but the model has {len(layers)} layers{shared}. "
                f"Use at most {len(layers)} (or the method 'full')."
            )
        train_only(model, lambda name: False)
        for layer in layers[len(layers) - options.top_layers:]:
            layer.requires_grad_(True)
        train_head(model, task)
        return model

    def merge(self, model):
        return model


@peft_hub.hookimpl
def register_methods(register):
    register(Freeze())
