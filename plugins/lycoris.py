"""LoHa and LoKr (the LyCORIS family; Hyeon-Woo et al., 2022; Yeh et al., 2024) through peft: the
weight update as a Hadamard product of two low-rank products (LoHa, rank up to r^2 from 2r vectors)
or as a Kronecker product (LoKr)."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import option
from peft_hub_plugins.lora import FullPrecisionOnly, Targets

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class LycorisOptions(Targets):
    r: int = option(8, "Rank of each low-rank factor.", low=1)
    alpha: float = option(16.0, "Scaling numerator: the update is multiplied by alpha / r.", above=0)
    rank_dropout: float = option(0.0, "Dropout of whole ranks while training.", low=0, below=1)
    module_dropout: float = option(0.0, "Probability of skipping a layer's update while training.", low=0, below=1)


class _Lycoris(FullPrecisionOnly):
    Options = LycorisOptions
    default_learning_rate = 1e-3  # as LoRA's

    def peft_config(self, options, task, model):
        import peft

        config = getattr(peft, self.config_class)
        return config(task_type=task.peft_task_type, r=options.r, alpha=options.alpha, rank_dropout=options.rank_dropout,
                      module_dropout=options.module_dropout, target_modules=self.targets(model, task, options))


class LoHa(_Lycoris):
    name = "loha"
    description = "LoHa: the update as a Hadamard product of two low-rank products (LyCORIS, peft)."
    config_class = "LoHaConfig"


class LoKr(_Lycoris):
    name = "lokr"
    description = "LoKr: the update as a Kronecker product of a small matrix and a low-rank one (LyCORIS, peft)."
    config_class = "LoKrConfig"


@peft_hub.hookimpl
def register_methods(register):
    register(LoHa())
    register(LoKr())
