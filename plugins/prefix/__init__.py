"""Prefix tuning (Li & Liang, 2021): trainable key/value vectors prepended to the attention of every
layer; the base model is untouched. Through peft for the families whose encoder takes past key
values (BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT ...); in-house for DeBERTa-v2/v3 (``deberta.py``),
whose relative-position attention peft cannot reach."""

from __future__ import annotations

from dataclasses import dataclass

import peft_hub
from peft_hub import StateDictMethod, option, train_head, train_only

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class PrefixOptions(peft_hub.Options):
    num_virtual_tokens: int = option(20, "Length of the prefix (virtual tokens per layer).", low=1)
    projection: bool = option(False, "Reparametrise the prefix through a 2-layer MLP (more stable, more parameters while training).")
    projection_hidden: int = option(128, "Hidden size of that MLP.", low=1)


def _in_house(config) -> bool:
    from .deberta import FAMILIES

    return config.model_type in FAMILIES


class Prefix(peft_hub.PeftMethod):
    name = "prefix"
    description = "Prefix tuning: trainable key/value prefixes in every attention layer (peft; in-house for DeBERTa)."
    Options = PrefixOptions
    # benchmarks/RESULTS.md: 3e-2 ties 1e-2 on CoNLL (lr_sweep.sh) and is the one that beats the
    # linear-probe floor in one epoch on NCBI-disease and TREC (defaults_check.sh)
    default_learning_rate = 3e-2
    cannot_merge = "the prefix is extra key/value vectors attended to at inference, not a change of any weight"
    weights_file = StateDictMethod.weights_file  # the in-house prefix's file
    encoder_decoder = False  # peft's prefix for encoder-decoders needs T5/BART-style layer counts and caches

    def refusal(self, capability, options):
        if capability == "encoder-decoder":
            return ("peft builds an encoder-decoder's prefix from the model's own layer and head counts and "
                    "cache layout, which a warm-started encoder-decoder (two encoder configs) does not give")
        return super().refusal(capability, options)

    def model_refusal(self, config, options):
        # peft hands the prefix to the model as past key values: the family's encoder must take them
        import inspect

        from transformers import MODEL_MAPPING

        encoder = MODEL_MAPPING.get(type(config), None)
        if _in_house(config) or encoder is None or "past_key_values" in inspect.signature(encoder.forward).parameters:
            return None
        return (f"{encoder.__name__} ({config.model_type}) takes no past key values, through which peft hands the prefix "
                "to every attention layer. Use lora, ia3 or adapter with this family, or prefix with BERT, RoBERTa, "
                "XLM-R, ELECTRA, CamemBERT or DeBERTa-v2/v3")

    def apply(self, model, options, task):
        if not _in_house(model.config):
            return super().apply(model, options, task)
        from . import deberta

        structure = peft_hub.anatomy(model, task.head_modules(model))
        attentions = [model.get_submodule(block.names(("query",))[0].rpartition(".")[0]) for block in structure.blocks]
        deberta.apply(model, attentions, options.num_virtual_tokens, options.projection, options.projection_hidden)
        train_only(model, lambda name: name.startswith(deberta.ENCODER_ATTRIBUTE + "."))
        train_head(model, task)
        return model

    def save(self, model, directory):
        if hasattr(model, "peft_config"):
            return super().save(model, directory)
        StateDictMethod.save(self, model, directory)

    def load(self, model, directory, options, task):
        if _in_house(model.config):
            return StateDictMethod.load(self, model, directory, options, task)
        return super().load(model, directory, options, task)

    def peft_config(self, options, task, model):
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(
            task_type=task.peft_task_type,
            num_virtual_tokens=options.num_virtual_tokens,
            prefix_projection=options.projection,
            encoder_hidden_size=options.projection_hidden,
        )


@peft_hub.hookimpl
def register_methods(register):
    register(Prefix())
