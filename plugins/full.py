"""Full fine-tuning: every weight trains. The baseline every parameter-efficient method is
measured against; its saved state is the whole model."""

from __future__ import annotations

import peft_hub
from peft_hub import StateDictMethod, train_only

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


class Full(StateDictMethod):
    name = "full"
    description = "Full fine-tuning: every weight of the encoder and the head trains."
    default_learning_rate = 2e-4  # benchmarks/lr_sweep.sh: best of 5e-5..5e-4 short of the most aggressive
    cannot_merge = None
    quantizable = False  # it updates base weights

    def apply(self, model, options, task):
        train_only(model, lambda name: True)
        return model

    def merge(self, model):
        return model  # already a plain transformers model


@peft_hub.hookimpl
def register_methods(register):
    register(Full())
