"""The multilabel task, written against the public task contract only: its data formats, its
threshold tuned on dev and kept in the run (and overridden when predicting), distillation and
self-training through the task-owned label shape, and classify's hint when labels look joined."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT, train_tiny
from peft_hub import DataError, recipes, registry
from peft_hub.cli import cli
from peft_hub.recipes import DataConfig

GOEMOTIONS = ROOT.parent / "shared" / "data" / "goemotions"


@pytest.fixture
def task():
    return registry.get_task("multilabel")


def _read(task, path, **options):
    splits = task.read_data(DataConfig(train=str(path), validation_split=0), task.Options(**options))
    return [(e.text, sorted(e.labels)) for e in splits["train"]]


def test_it_reads_every_layout(task, tmp_path):
    expected = [("so happy and grateful", ["gratitude", "joy"]), ("nothing here", []), ("how scary", ["fear"])]
    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / "labels.txt").write_text("fear\ngratitude\njoy\n")
    (tmp_path / "ids" / "train.tsv").write_text("so happy and grateful\t1,2\tid1\nnothing here\t\tid2\nhow scary\t0\tid3\n")
    (tmp_path / "joined.tsv").write_text("so happy and grateful\tjoy; gratitude\nnothing here\t\nhow scary\tfear\n")
    (tmp_path / "joined.csv").write_text('text,labels\n"so happy and grateful","joy,gratitude"\nnothing here,\nhow scary,fear\n')
    (tmp_path / "lists.jsonl").write_text("".join(json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in expected))
    (tmp_path / "columns.csv").write_text("text,fear,gratitude,joy\nso happy and grateful,0,1,1\nnothing here,0,0,0\nhow scary,1,0,0\n")
    for name in ("ids/train.tsv", "joined.tsv", "joined.csv", "lists.jsonl", "columns.csv"):
        assert _read(task, tmp_path / name) == expected, name
    # labels.txt gives the names and their order, also for labels the training data lacks
    data = DataConfig(path=str(tmp_path / "ids"))
    assert task.labels(task.read_data(data, task.Options()), data) == ["fear", "gratitude", "joy"]


def test_bad_files_say_what_is_wrong(task, tmp_path):
    (tmp_path / "labels.txt").write_text("fear\njoy\n")
    (tmp_path / "train.tsv").write_text("a text\t5\tid\n")
    with pytest.raises(DataError, match="label id 5 is past the 2 names of labels.txt"):
        _read(task, tmp_path / "train.tsv")
    (tmp_path / "columns.csv").write_text("text,fear,joy\nsome text,0,maybe\n")
    with pytest.raises(DataError, match="column 'joy' holds 'maybe'"):
        _read(task, tmp_path / "columns.csv")


@pytest.mark.real
def test_goemotions_as_published(task):
    if not GOEMOTIONS.is_dir():
        pytest.skip(f"{GOEMOTIONS} is absent")
    data = DataConfig(path=str(GOEMOTIONS))
    splits = task.read_data(data, task.Options())
    labels = task.labels(splits, data)
    assert len(labels) == 28 and labels[0] == "admiration" and labels[-1] == "neutral"
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [43410, 5426, 5427]
    assert sum(len(e.labels) > 1 for e in splits["train"]) == 7102


def test_classify_says_the_data_looks_multi_label(tmp_path, tiny_model, cli_runner):
    rows = "".join(f"text number {i}\t{'2,15' if i % 3 == 0 else ('2' if i % 2 else '15')}\n" for i in range(30))
    (tmp_path / "train.tsv").write_text(rows)
    result = cli_runner.invoke(cli, ["adapt", "--task", "classify", "--method", "lora", "--model", str(tiny_model),
                                     "--data", str(tmp_path / "train.tsv"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "looks multi-label" in result.output and "--task multilabel" in result.output


def test_the_threshold_is_tuned_on_dev_kept_in_the_run_and_overridable(tiny_model, tmp_path, cli_runner):
    run = train_tiny(tiny_model, tmp_path / "run", "multilabel", **{"training.epochs": 4, "training.learning_rate": 5e-3})
    metrics = run.metrics
    recorded = yaml.safe_load((run.directory / "recipe.yaml").read_text())["task"]["options"]
    assert recorded["threshold"] == metrics["dev"]["threshold"] == metrics["test"]["threshold"]
    assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(metrics["test"]) and metrics["primary_metric"] == "micro_f1"
    assert any(k.startswith("f1_") for k in metrics["test"])
    text = "thank you so much and what a surprise"
    scores = json.loads(cli_runner.invoke(cli, ["predict", str(run.directory), text, "--json"]).stdout)[0]["scores"]
    low = json.loads(cli_runner.invoke(cli, ["predict", str(run.directory), text, "--json", "--option", "threshold=0.01"]).stdout)[0]
    assert sorted(low["labels"]) == sorted(scores)  # every label passes a threshold of 0.01
    again = cli_runner.invoke(cli, ["evaluate", str(run.directory), "--data", str(registry.get_task("multilabel").sample_data()),
                                    "--json"])
    assert json.loads(again.stdout)["test"]["micro_f1"] == pytest.approx(metrics["test"]["micro_f1"], abs=1e-6)


def test_it_learns_from_a_teacher_and_self_trains(tiny_model, tmp_path):
    from peft_hub import runs

    teacher = train_tiny(tiny_model, tmp_path / "teacher", "multilabel", **{"training.epochs": 3}).directory
    pool = tmp_path / "pool.txt"
    pool.write_text("thank you so much\nthis is terrifying\nwhat a surprise\n" * 2)
    for cache in (True, False):
        student = train_tiny(tiny_model, tmp_path / f"student-{cache}", "multilabel", **{
            "training.epochs": 2, "teacher.run": str(teacher), "teacher.unlabeled": str(pool), "teacher.cache": cache,
            **({"augment": [{"name": "eda"}]} if not cache else {})})
        assert student.metrics["teacher"]["unlabeled_examples"] == 6 and student.metrics["train_loss"] > 0
    data, source = recipes.compose(None, {"task.name": "multilabel", "method.name": "lora", "model.name": str(tiny_model),
                                          "training.epochs": 2, "self_train.unlabeled": str(pool), "self_train.rounds": 1,
                                          "self_train.threshold": 0.0, "output.dir": str(tmp_path / "st")})
    [(_, directory, _)] = list(runs.run(recipes.validate(data, source), echo=lambda m: None, quiet=True))
    pseudo = [json.loads(line) for line in (tmp_path / "st" / "pseudo-1.jsonl").read_text().splitlines()]
    assert directory.name == "round-1" and all(isinstance(p["labels"], list) and 0.5 <= p["confidence"] <= 1 for p in pseudo)


def test_the_hub_card_loads_it_as_multi_label(tiny_runs, tiny_model, tmp_path, hub_home):
    from peft_hub import hub

    run = train_tiny(tiny_model, tmp_path / "run", "multilabel", **{"training.max_steps": 2})
    entry = hub.add(run.directory, "emotions")
    card = (entry.path / "README.md").read_text()
    assert "AutoModelForSequenceClassification" in card and 'problem_type="multi_label_classification"' in card


def test_per_label_thresholds_are_tuned_label_by_label(task):
    import numpy as np

    from peft_hub.tasks import Evaluation

    # label 0 is told by probabilities around 0.2, label 1 by probabilities around 0.8
    probabilities = np.array([[0.25, 0.9], [0.05, 0.6], [0.3, 0.85], [0.1, 0.7]])
    gold = np.array([[1, 1], [0, 0], [1, 1], [0, 0]], dtype=float)
    evaluation = Evaluation(probabilities, gold, ["a", "b"], [], [], task.Options(tune_threshold="per_label"))
    low, high = task.tune(evaluation)["thresholds"]
    assert 0.1 < low <= 0.25 and 0.7 < high <= 0.85
    scored = task.compute_metrics(Evaluation(probabilities, gold, ["a", "b"], [], [], task.Options(thresholds=[low, high])))
    assert scored["micro_f1"] == scored["macro_f1"] == scored["subset_accuracy"] == 1.0
    from peft_hub.options import parse

    # a list option's bounds hold for each of its numbers
    assert parse(task.Options, {"thresholds": [0.5, 1.0]})[1] == ["thresholds: must be in (0, 1), got [0.5, 1.0]"]
