"""The bottleneck adapter (Houlsby et al., 2019; Pfeiffer et al., 2021), implemented here because
peft has none: a down-projection, a non-linearity and an up-projection with a residual, inserted
after the attention output and/or the feed-forward output of every encoder layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import peft_hub
from peft_hub import StateDictMethod, encoder_layers, option, train_head, train_only

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class AdapterOptions(peft_hub.Options):
    config: Literal["pfeiffer", "houlsby"] = option(
        "pfeiffer", "pfeiffer: one adapter after the feed-forward output; houlsby: one after attention too."
    )
    reduction_factor: int = option(16, "Hidden size / bottleneck size (higher = fewer parameters).", low=1)
    non_linearity: Literal["relu", "gelu", "swish", "tanh"] = option("relu", "Activation inside the bottleneck.")


class BottleneckAdapter(StateDictMethod):
    name = "adapter"
    description = "Bottleneck adapter (Pfeiffer/Houlsby), in-house: small residual MLPs inside every layer."
    Options = AdapterOptions
    default_learning_rate = 1e-2  # benchmarks/lr_sweep.sh: the zero-initialised up-projection needs a high rate
    cannot_merge = "its down-projection, activation and up-projection are a non-linear function that no existing weight can absorb"

    def apply(self, model, options, task):
        from .layer import ADAPTER_PREFIX, AdaptedLinear  # torch loads only when a run needs it

        places = ["output"] if options.config == "pfeiffer" else ["attention.output", "output"]
        for layer in encoder_layers(model):
            for place in places:
                parent = layer.get_submodule(place)
                if not isinstance(parent.dense, AdaptedLinear):
                    parent.dense = AdaptedLinear(parent.dense, options.reduction_factor, options.non_linearity)
        train_only(model, lambda name: f".{ADAPTER_PREFIX}." in name)
        train_head(model, task)
        return model


@peft_hub.hookimpl
def register_methods(register):
    register(BottleneckAdapter())
