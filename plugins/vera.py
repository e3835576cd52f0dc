"""VeRA (Kopiczko, Blankevoort and Asano, 2024) through peft: one pair of frozen random matrices
shared by every adapted layer, and per layer only two scaling vectors that train: a LoRA-like update
with a small fraction of LoRA's trainable parameters."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import option
from peft_hub_plugins.lora import FullPrecisionOnly, Targets

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class VeraOptions(Targets):
    r: int = option(256, "Rank of the shared random matrices (they do not train, so a high rank costs no trainable parameters).", low=1)
    dropout: float = option(0.0, "Dropout on the adapter input.", low=0, below=1)
    d_initial: float = option(0.1, "Initial value of the d scaling vectors.", above=0)


class Vera(FullPrecisionOnly):
    name = "vera"
    description = "VeRA: frozen shared random low-rank matrices, trained per-layer scaling vectors (peft)."
    Options = VeraOptions
    default_learning_rate = 1e-2  # the paper trains VeRA at about 10x LoRA's rate

    def peft_config(self, options, task, model):
        from peft import VeraConfig

        return VeraConfig(task_type=task.peft_task_type, r=options.r, vera_dropout=options.dropout,
                          d_initial=options.d_initial, target_modules=self.targets(model, task, options),
                          save_projection=True)  # the adapter carries its random matrices: loads anywhere


@peft_hub.hookimpl
def register_methods(register):
    register(Vera())
