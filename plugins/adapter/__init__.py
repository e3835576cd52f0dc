"""The bottleneck adapter (Houlsby et al., 2019; Pfeiffer et al., 2021), implemented here because
peft has none: a down-projection, a non-linearity and an up-projection with a residual, inserted
after the attention output and/or the feed-forward output of every encoder layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import peft_hub
from peft_hub import StateDictMethod, anatomy, option, train_head, train_only

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
        from .layer import AdaptedLinear, Bottleneck  # torch loads only when a run needs it

        # after the feed-forward output (and the attention output) of every encoder layer, found from
        # the architecture (BERT's output.dense, DistilBERT's ffn.lin2, ModernBERT's mlp.Wo ...)
        roles = ("ffn-out",) if options.config == "pfeiffer" else ("attention-out", "ffn-out")
        for name in anatomy(model, task.head_modules(model)).targets(roles):
            parent_name, _, attribute = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            if not isinstance(getattr(parent, attribute), AdaptedLinear):
                setattr(parent, attribute, AdaptedLinear(getattr(parent, attribute), options.reduction_factor, options.non_linearity))
        # by identity, not by name: a family may have modules of that name of its own (MobileBERT)
        ours = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, Bottleneck) for p, _ in m.named_parameters()}
        train_only(model, lambda name: name in ours)
        train_head(model, task)
        return model


@peft_hub.hookimpl
def register_methods(register):
    register(BottleneckAdapter())
