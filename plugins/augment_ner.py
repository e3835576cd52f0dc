"""Augmenters for NER: mention replacement (Dai and Adel, 2020: an entity swapped for another
mention of the same type from the training set) and label-preserving token dropout (words
outside entities dropped). Tags are rewritten in IOB2."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

import peft_hub
from peft_hub import AugmenterOptions, option

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)


def mentions(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of each entity in IOB2 tags."""
    spans, start = [], None
    for i, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and start is not None and tag[2:] == tags[start][2:]
        if start is not None and not inside:
            spans.append((start, i, tags[start][2:]))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start = i
    return spans


@dataclass
class ReplaceOptions(AugmenterOptions):
    rate: float = option(0.5, "Probability that each entity of a changed sentence is replaced.", low=0, high=1)


class MentionReplace(peft_hub.Augmenter):
    name = "mention_replace"
    description = "Swaps entities for other mentions of the same type from the training set."
    Options = ReplaceOptions
    shapes = ("tokens",)  # an example with .tokens and .tags (IOB2)

    def fit(self, examples, options):
        found = defaultdict(set)
        for sentence in examples:
            for start, end, kind in mentions(sentence.tags):
                found[kind].add(tuple(sentence.tokens[start:end]))
        return {kind: sorted(words) for kind, words in found.items()}

    def augment(self, example, rng, options, state):
        tokens, tags, at = [], [], 0
        for start, end, kind in mentions(example.tags):
            tokens += example.tokens[at:start]
            tags += example.tags[at:start]
            words = list(rng.choice(state[kind])) if rng.random() < options.rate and state.get(kind) else example.tokens[start:end]
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
            at = end
        return dataclasses.replace(example, tokens=tokens + example.tokens[at:], tags=tags + example.tags[at:])


@dataclass
class DropoutOptions(AugmenterOptions):
    rate: float = option(0.1, "Probability that each word outside an entity is dropped from a changed sentence.", low=0, below=1)


class TokenDropout(peft_hub.Augmenter):
    name = "token_dropout"
    description = "Drops words outside entities (label-preserving token dropout)."
    Options = DropoutOptions
    shapes = ("tokens",)  # an example with .tokens and .tags (IOB2)

    def augment(self, example, rng, options, state):
        keep = [i for i, tag in enumerate(example.tags) if tag != "O" or rng.random() >= options.rate]
        if not keep:
            return example
        return dataclasses.replace(example, tokens=[example.tokens[i] for i in keep], tags=[example.tags[i] for i in keep])


@peft_hub.hookimpl
def register_augmenters(register):
    register(MentionReplace())
    register(TokenDropout())
