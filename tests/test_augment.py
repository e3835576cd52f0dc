"""Augmenters: each keeps the labels right and never changes the example it was given; they run on
the fly in adapt (again each epoch, the same for a seed) and are refused for tasks they do not know."""

from __future__ import annotations

import random

import pytest

from conftest import SAMPLES, train_tiny
from peft_hub import TaggedSentence, recipes, registry
from peft_hub.augment import AugmentedDataset
from peft_hub.cli import cli

SENTENCE = TaggedSentence(["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
                          ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"], 1)
OTHER = TaggedSentence(["Peter", "Blackburn", "visited", "New", "York"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], 2)


def _augmenter(name, **options):
    augmenter = registry.get_augmenter(name)
    parsed, errors = __import__("peft_hub").parse_options(augmenter.Options, options)
    assert not errors
    return augmenter, parsed


def test_mention_replacement_swaps_whole_mentions_of_the_same_type():
    augmenter, options = _augmenter("mention_replace", rate=1.0)
    state = augmenter.fit([SENTENCE, OTHER, TaggedSentence(["the", "Red", "Cross"], ["O", "B-ORG", "I-ORG"], 3)], options)
    assert state == {"ORG": [("EU",), ("Red", "Cross")], "MISC": [("British",), ("German",)], "PER": [("Peter", "Blackburn")],
                     "LOC": [("New", "York")]}
    before = (list(SENTENCE.tokens), list(SENTENCE.tags))
    for seed in range(20):
        out = augmenter.augment(SENTENCE, random.Random(seed), options, state)
        assert len(out.tokens) == len(out.tags)
        assert [t for t, g in zip(out.tokens, out.tags) if g == "O"] == ["rejects", "call", "to", "boycott", "lamb", "."]
        from peft_hub_plugins.augment_ner import mentions

        kinds = [kind for _, _, kind in mentions(out.tags)]
        assert kinds == ["ORG", "MISC", "MISC"]  # the same entities, in order, maybe other words
        for start, end, kind in mentions(out.tags):
            assert tuple(out.tokens[start:end]) in state[kind]
    assert (SENTENCE.tokens, SENTENCE.tags) == before


def test_token_dropout_drops_only_words_outside_entities():
    augmenter, options = _augmenter("token_dropout", rate=0.5)
    outs = [augmenter.augment(OTHER, random.Random(seed), options, None) for seed in range(10)]
    for out in outs:
        assert list(zip(out.tokens, out.tags)) in (list(zip(OTHER.tokens, OTHER.tags)),
                                                  [(t, g) for t, g in zip(OTHER.tokens, OTHER.tags) if g != "O"])
    assert {len(out.tokens) for out in outs} == {4, 5}  # "visited" dropped in some draws, kept in others


@pytest.mark.parametrize("name", ["eda", "span_cutoff"])
def test_text_augmenters_keep_the_label(name):
    from peft_hub_plugins.classify import Example

    augmenter, options = _augmenter(name)
    example = Example("the staff were friendly and the room was clean and quiet", "positive", 1)
    outs = {augmenter.augment(example, random.Random(seed), options, None).text for seed in range(10)}
    assert len(outs) > 1 and example.text not in outs
    for seed in range(10):
        out = augmenter.augment(example, random.Random(seed), options, None)
        assert out.label == "positive" and set(out.text.split()) <= set(example.text.split())
    assert example.text == "the staff were friendly and the room was clean and quiet"


def test_adapt_augments_on_the_fly_and_differently_each_epoch(tiny_model, tmp_path, tokenizer):
    data, source = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                          "augment": [{"name": "mention_replace", "options": {"p": 1.0, "rate": 1.0}}]})
    resolved = recipes.validate(data, source)
    task = resolved.task
    splits = task.read_data(recipes.DataConfig(path=str(SAMPLES / "ner")), resolved.task_options)
    labels = task.labels(splits)
    from peft_hub.features import FeatureDataset

    train = FeatureDataset(task.encode(splits["train"], tokenizer, labels, resolved.task_options), splits["train"])
    with_entities = next(i for i, s in enumerate(splits["train"]) if any(t != "O" for t in s.tags))
    epochs = [AugmentedDataset(train, task, tokenizer, labels, resolved.task_options, resolved.augmenters, seed=1) for _ in range(2)]
    first, second = epochs[0][with_entities], epochs[0][with_entities]
    assert epochs[1][with_entities] == first  # the same draws for the same seed
    assert first != train.features[with_entities] or second != train.features[with_entities]
    run = train_tiny(tiny_model, tmp_path / "run", "ner", augment=[{"name": "mention_replace"}, {"name": "token_dropout"}])
    assert [a["name"] for a in recipes.safe_yaml((run.directory / "recipe.yaml").read_text())["augment"]] == ["mention_replace", "token_dropout"]


def test_augmenters_are_refused_where_they_do_not_apply(cli_runner, tiny_model, tiny_runs, tmp_path):
    base = ["adapt", "--task", "ner", "--method", "lora", "--model", str(tiny_model), "--output", str(tmp_path / "o"), "--quiet"]
    cases = [
        (["--augment", "eda"], "changes examples of the shape(s) 'text', not the 'ner' task's, whose examples are 'tokens'"),
        (["--augment", "mention_replac"], "Unknown augmenter 'mention_replac'. Did you mean 'mention_replace'?"),
        (["augment=[{name: token_dropout, options: {rate: 2}}]"], "augment[0].options.rate: must be in [0, 1)"),
        (["augment=[{name: token_dropout, options: {p: -1}}]"], "augment[0].options.p: must be in [0, 1]"),
        (["--augment", "token_dropout", "--teacher", str(tiny_runs["ner"])], "augment: with teacher.run needs teacher.cache=false"),
    ]
    for extra, message in cases:
        result = cli_runner.invoke(cli, [*base, *extra])
        assert result.exit_code == 1 and message in result.output, (extra, result.output)
    listed = cli_runner.invoke(cli, ["augmenters", "list"]).output
    assert all(f"{name}: " in listed for name in ("eda", "span_cutoff", "mention_replace", "token_dropout"))
    assert "shapes: text" in listed and "shapes: tokens" in listed
