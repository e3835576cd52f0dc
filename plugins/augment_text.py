"""Augmenters for text classification: EDA's operations without a thesaurus (Wei and Zou, 2019:
random deletion, swap and insertion of the text's own words) and span cutoff (Shen et al., 2020:
a contiguous span of words removed). The label stays."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import peft_hub
from peft_hub import AugmenterOptions, option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


@dataclass
class EdaOptions(AugmenterOptions):
    delete: float = option(0.1, "Probability that each word is deleted.", low=0, below=1)
    swaps: int = option(1, "How many times two random words trade places.", low=0)
    inserts: int = option(1, "How many copies of the text's own words are inserted at random places.", low=0)


class Eda(peft_hub.Augmenter):
    name = "eda"
    description = "Random deletion, swap and insertion of the text's own words (EDA without a thesaurus)."
    Options = EdaOptions
    shapes = ("text",)  # an example with a .text

    def augment(self, example, rng, options, state):
        words = example.text.split()
        if len(words) < 2:
            return example
        kept = [w for w in words if rng.random() >= options.delete] or [rng.choice(words)]
        for _ in range(options.swaps):
            i, j = rng.randrange(len(kept)), rng.randrange(len(kept))
            kept[i], kept[j] = kept[j], kept[i]
        for _ in range(options.inserts):
            kept.insert(rng.randrange(len(kept) + 1), rng.choice(words))
        return dataclasses.replace(example, text=" ".join(kept))


@dataclass
class CutoffOptions(AugmenterOptions):
    ratio: float = option(0.1, "Share of the words in the removed span.", low=0, below=1)


class SpanCutoff(peft_hub.Augmenter):
    name = "span_cutoff"
    description = "Removes one contiguous span of words (span cutoff)."
    Options = CutoffOptions
    shapes = ("text",)  # an example with a .text

    def augment(self, example, rng, options, state):
        words = example.text.split()
        span = int(len(words) * options.ratio)
        if span < 1 or span >= len(words):
            return example
        start = rng.randrange(len(words) - span + 1)
        return dataclasses.replace(example, text=" ".join(words[:start] + words[start + span :]))


@peft_hub.hookimpl
def register_augmenters(register):
    register(Eda())
    register(SpanCutoff())
