"""The defaults that make a first run learn: the fresh head's own rate, a dev split carved when the
data has none, and the collapse guard that says when a run learned nothing."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import numpy as np
import pytest

from conftest import SAMPLES
from peft_hub import adapt, guard, recipes, registry
from peft_hub.cli import cli
from peft_hub.errors import DataError, RecipeError
from peft_hub.recipes import DataConfig
from peft_hub.tasks import Evaluation


def _run(tiny_model, out, *overrides, task="classify", method="lora"):
    data, source = recipes.compose(None, {"task.name": task, "method.name": method, "model.name": str(tiny_model),
                                          "output.dir": str(out)}, list(overrides))
    said: list[str] = []
    return adapt.run(recipes.validate(data, source), quiet=True, echo=said.append), said


# -- the collapse guard ---------------------------------------------------------------------------


def _floor(task, labels, predictions, label_ids):
    evaluation = Evaluation(predictions, label_ids, labels, [], [])
    constant = task.constant_predictions(evaluation)
    return task.compute_metrics(dataclasses.replace(evaluation, predictions=constant))[task.primary_metric]


def test_constant_prediction_scores_with_the_tasks_own_metric():
    classify, ner = registry.get_task("classify"), registry.get_task("ner")
    labels = np.array([0, 0, 0, 1, 2])
    evaluation = Evaluation(np.array([1, 1, 0, 2, 2]), labels, ["a", "b", "c"], [], [])
    assert classify.compute_metrics(dataclasses.replace(evaluation, predictions=classify.constant_predictions(evaluation)))["accuracy"] \
        == pytest.approx(0.6)
    # NER: the most common tag is O, so the constant prediction finds no entity at all
    gold = np.array([[2, 0, 1, 2, -100], [2, 2, 2, 0, 2]])
    assert _floor(ner, ["B-PER", "I-PER", "O"], np.zeros_like(gold), gold) == 0.0
    # no constant prediction for float predictions (a regression) nor for several label arrays (spans)
    assert classify.constant_predictions(Evaluation(np.zeros(3), np.zeros(3), [], [], [])) is None
    assert classify.constant_predictions(Evaluation(np.zeros(3, dtype=int), (labels, labels), [], [], [])) is None
    assert guard.at_majority_level({"f1": 0.0, "majority_f1": 0.0}, "f1")
    assert guard.at_majority_level({"f1": 0.615, "majority_f1": 0.6}, "f1")  # less than 5% of the way to 1
    assert guard.at_majority_level({"f1": 0.0188, "majority_f1": 0.0066}, "f1")  # 3 of 50 labels predicted
    assert not guard.at_majority_level({"f1": 0.7, "majority_f1": 0.6}, "f1")
    assert not guard.at_majority_level({"f1": 0.7}, "f1")  # nothing to compare with: no claim


def test_warnings_name_the_split_the_level_and_what_to_try():
    metrics = {"dev": {"f1": 0.0047, "majority_f1": 0.0047}, "test": {"f1": 0.0047, "majority_f1": 0.0047},
               "history": [{"loss": 3.8}, {"loss": 3.3}, {"loss": 3.2}, {"loss": 3.2}]}
    (warning,) = guard.warnings(metrics, "f1")  # the loss moved; dev and test say one thing once
    assert "dev f1 0.0047" in warning and "most common label (0.0047)" in warning and "head_learning_rate" in warning
    flat = {"history": [{"loss": 0.70}, {"loss": 0.60}, {"loss": 0.71}, {"loss": 0.62}]}  # noisy but flat
    (warning,) = guard.warnings(flat, "f1")
    assert "barely moved (mean 0.6500 over the first half of the logs, 0.6650 over the last half)" in warning
    both = {**flat, "dev": {"f1": 0.0, "majority_f1": 0.0}}
    assert len(guard.warnings(both, "f1")) == 2
    plateau = {**flat, "dev": {"f1": 0.80, "majority_f1": 0.34}}  # learned early, then the loss plateaued
    assert guard.warnings(plateau, "f1") == []
    learned = {"dev": {"f1": 0.8, "majority_f1": 0.3}, "history": [{"loss": 0.7}, {"loss": 0.5}, {"loss": 0.3}, {"loss": 0.2}]}
    assert guard.warnings(learned, "f1") == []
    assert "most common label (f1)" in guard.progress_note({"f1": 0.1, "majority_f1": 0.1, "loss": 2.0})
    assert guard.progress_note({"f1": 0.5, "majority_f1": 0.1}) == ""


def test_a_run_that_cannot_learn_is_flagged_everywhere(tiny_model, tmp_path, cli_runner, monkeypatch):
    """A learning rate far too small for the steps given, and a head that starts at zero (so it
    predicts O everywhere, whatever the tiny model's random weights): the scores stay at the
    constant prediction's level and the loss stays flat; the summary, metrics.json and report say so."""
    task = registry.get_task("ner")
    build = type(task).build_model

    def zero_head(self, *args, **kwargs):
        model = build(self, *args, **kwargs)
        for parameter in model.classifier.parameters():
            parameter.data.zero_()
        return model

    monkeypatch.setattr(type(task), "build_model", zero_head)
    out = tmp_path / "stuck"
    result = cli_runner.invoke(cli, [
        "adapt", "--method", "lora", "--task", "ner", "--model", str(tiny_model), "--output", str(out),
        "--max-steps", "16", "--lr", "1e-9", "training.head_learning_rate=1e-9", "training.logging_steps=2",
        "training.warmup_ratio=0", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "WARNING: dev f1 " in result.output and "is at the level of always predicting the most common label" in result.output
    assert "WARNING: the training loss barely moved" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["warnings"]) == 2
    assert metrics["dev"]["majority_f1"] == 0.0 and "majority_f1" in metrics["test"]
    report = cli_runner.invoke(cli, ["report", str(out), "--png", str(tmp_path / "r.png")])
    assert f"{out} (!)" in report.output and "collapse guard warned" in report.output


def _keyword_data(directory):
    """Texts whose label is told by one word: learnable by the tiny model in a few epochs (both words
    are in the tiny model's vocabulary, which conftest builds from the sample data)."""
    from conftest import _vocabulary

    assert {"great", "never"} <= set(_vocabulary()), "the keywords must be words the tiny model knows"
    words = "the staff meal service room food price support emails years was had in and my of it".split()
    rng = random.Random(0)
    directory.mkdir()
    for split, size in (("train", 160), ("dev", 40)):
        rows = []
        for _ in range(size):
            label = rng.choice(["positive", "negative"])
            text = rng.sample(words, 5)
            text.insert(rng.randrange(6), "great" if label == "positive" else "never")
            rows.append(f"{' '.join(text)}\t{label}")
        (directory / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return directory


def test_a_run_that_learns_is_not_flagged(tiny_model, tmp_path, cli_runner):
    data = _keyword_data(tmp_path / "data")
    loaded, _ = _run(tiny_model, tmp_path / "ok", f"data.path={data}", "training.epochs=8", "training.learning_rate=1e-2",
                     "training.logging_steps=5")
    assert not guard.at_majority_level(loaded.metrics["dev"], "f1")
    assert loaded.metrics["warnings"] == []
    report = cli_runner.invoke(cli, ["report", str(tmp_path / "ok"), "--png", str(tmp_path / "r.png")])
    assert "(!)" not in report.output


# -- the fresh head's rate --------------------------------------------------------------------------


def test_the_head_rate_follows_the_scale_of_its_input(tiny_model, tmp_path):
    from peft_hub.train import HEAD_RATE_X_RMS, default_head_rate

    _, said = _run(tiny_model, tmp_path / "a", "training.max_steps=1")
    (line,) = [line for line in said if line.startswith("Method lora")]
    found = re.search(r"learning rate 0.001, head \(classifier\) ([0-9.e-]+) \(its input's RMS is ([0-9.e-]+)\)", line)
    assert found, line
    assert float(found[1]) == pytest.approx(default_head_rate(1e-3, float(found[2])), rel=1e-2)
    assert default_head_rate(2e-3, 0.07) == pytest.approx(HEAD_RATE_X_RMS / 0.07)  # a small pooled feature: fast
    assert default_head_rate(2e-3, 10.0) == 2e-3  # never slower than the method itself
    assert default_head_rate(2e-4, 1e-4) == 0.1  # nor faster than 0.1
    _, said = _run(tiny_model, tmp_path / "b", "training.max_steps=1", "training.head_learning_rate=5e-3", method="full")
    assert any("learning rate 0.0002, head (classifier) 0.005 (training.head_learning_rate)" in line for line in said)
    with pytest.raises(RecipeError, match="head_learning_rate: must be in"):
        recipes.validate({"task": {"name": "ner"}, "method": {"name": "lora"}, "training": {"head_learning_rate": 2}})


def test_head_input_rms_sees_what_the_head_receives(tiny_model):
    import torch
    from transformers import AutoModelForTokenClassification

    from peft_hub.train import head_input_rms

    model = AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3).train()
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        hidden = model.bert(**batch).last_hidden_state
    assert head_input_rms(model, ["classifier"], batch) == pytest.approx(hidden.pow(2).mean().sqrt().item(), rel=1e-5)
    assert model.training  # left as it was found
    assert head_input_rms(model, [], batch) is None


# -- data without a dev split, in another encoding, with hierarchical labels -------------------


def test_a_dev_split_is_held_out_when_the_data_has_none():
    said: list[str] = []
    splits = {"train": list(range(100)), "test": [1000]}
    carved = adapt.hold_out_dev(splits, 0.1, 42, said.append)
    assert len(carved["validation"]) == 10 and len(carved["train"]) == 90 and carved["test"] == [1000]
    assert sorted(carved["train"] + carved["validation"]) == list(range(100))
    assert carved == adapt.hold_out_dev(splits, 0.1, 42, said.append)  # seeded
    assert carved["validation"] != adapt.hold_out_dev(splits, 0.1, 43, said.append)["validation"]
    assert "holding out 10 of the 100 training examples as dev" in said[0]
    assert adapt.hold_out_dev(splits, 0.0, 42, said.append) is splits
    with_dev = {"train": [1, 2, 3], "validation": [4]}
    assert adapt.hold_out_dev(with_dev, 0.1, 42, said.append) is with_dev


def test_data_encoding_and_coarse_labels(tmp_path):
    task = registry.get_task("classify")
    (tmp_path / "train.txt").write_bytes("LOC:city Which city has a sister\xf0city ?\nHUM:ind Who was Galileo ?\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 1: not valid UTF-8 .*data\.encoding=latin-1"):
        task.read_data(DataConfig(path=str(tmp_path)), task.Options())
    splits = task.read_data(DataConfig(path=str(tmp_path), encoding="latin-1"), task.Options())
    assert [(e.label, e.text) for e in splits["train"]] == [("LOC:city", "Which city has a sister\xf0city ?"),
                                                             ("HUM:ind", "Who was Galileo ?")]
    coarse = task.read_data(DataConfig(path=str(tmp_path), encoding="latin-1"), task.Options(coarse_labels=True))
    assert task.labels(coarse) == ["HUM", "LOC"]
    with pytest.raises(RecipeError, match="encoding: unknown text encoding 'latin-9x'"):
        recipes.validate({"task": {"name": "ner"}, "method": {"name": "lora"}, "data": {"encoding": "latin-9x"}})
    with pytest.raises(RecipeError, match=r"validation_split: must be in \[0, 1\)"):
        recipes.validate({"task": {"name": "ner"}, "method": {"name": "lora"}, "data": {"validation_split": 1.5}})


def test_a_sample_of_a_file_sorted_by_label_is_flagged():
    task = registry.get_task("classify")
    Example = type(task.read_data(DataConfig(path=str(SAMPLES / "classify")), task.Options())["train"][0])
    train = [Example(f"text {i}", label, i) for i, label in enumerate(["a"] * 50 + ["b"] * 30 + ["c"] * 20)]
    said: list[str] = []
    limited = adapt.limit_samples(task, {"train": train, "test": train[48:53]}, DataConfig(max_train_samples=60, max_eval_samples=2), said.append)
    assert len(limited["train"]) == 60 and len(limited["test"]) == 2
    assert "the first 60 train examples (data.max_train_samples) hold only 2 of the 3 labels" in said[0]
    assert "the first 2 test examples (data.max_eval_samples) hold only 1 of the 2 labels" in said[1]
    assert "its scores cover only those" in said[1]
    said.clear()
    adapt.limit_samples(task, {"train": train}, DataConfig(max_train_samples=90), said.append)
    assert said == []


def test_pretraining_text_in_another_encoding(tmp_path):
    from peft_hub.text import documents

    (tmp_path / "corpus.txt").write_bytes("a sister\xf0city\nGalileo\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 1: not valid UTF-8 .*data\.encoding=latin-1"):
        list(documents([tmp_path / "corpus.txt"]))
    assert list(documents([tmp_path / "corpus.txt"], encoding="latin-1")) == ["a sister\xf0city", "Galileo"]
    with pytest.raises(RecipeError, match="encoding: unknown text encoding 'nope'"):
        recipes.validate({"objective": {"name": "mlm"}, "data": {"path": str(tmp_path), "encoding": "nope"}})
