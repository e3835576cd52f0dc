"""End to end on a tiny model made on the fly: CLI adapt, run dir contents, reload, predict,
evaluate, and the errors a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import SAMPLES
from peft_hub import adapt, recipes, finished
from peft_hub.cli import cli

TEXTS = ["Anna Schmidt flew from Paris to Tokyo with Toyota .", "EU rejects German call to boycott British lamb ."]


def _adapt_args(tiny_model, out, task="ner", *extra):
    return ["adapt", "--method", "lora", "--task", task, "--model", str(tiny_model), "--output", str(out),
            "--epochs", "2", "--quiet", *extra]


@pytest.fixture(scope="module")
def ner_run(tiny_model, tmp_path_factory):
    """A finished NER run on the built-in sample, trained in this process."""
    out = tmp_path_factory.mktemp("runs") / "ner"
    data, source = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                          "output.dir": str(out), "training.epochs": 4})
    return adapt.run(recipes.validate(data, source), quiet=True, echo=lambda m: None)


def test_run_dir_holds_everything(ner_run):
    out = ner_run.directory
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "tokenizer/tokenizer.json",
                 "labels.json", "recipe.yaml", "metrics.json", "curves.png", "run.json"):
        assert (out / name).exists(), name
    assert not (out / "checkpoints").exists()
    assert list((out / "tensorboard").rglob("events.out.tfevents*"))
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("dev", "test"):
        assert {"precision", "recall", "f1"} <= set(metrics[split])
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["train_runtime_s"] > 0 and metrics["train_tokens_per_s"] > 0
    assert sum("eval_f1" in entry for entry in metrics["history"]) == 4  # one dev evaluation per epoch
    assert metrics["primary_metric"] == "f1" and metrics["peak_memory_mb"] > 0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "labels.json").read_text())[0] == "O"
    # the head is saved with the adapter
    from safetensors import safe_open

    with safe_open(str(out / "adapter/adapter_model.safetensors"), "pt") as f:
        assert any("classifier" in key for key in f.keys())


def test_report_compares_runs_as_table_json_and_png(ner_run, tiny_model, tmp_path, cli_runner):
    data, source = recipes.compose(None, {"task.name": "ner", "method.name": "ia3", "model.name": str(tiny_model),
                                          "output.dir": str(tmp_path / "ia3"), "training.epochs": 1})
    other = adapt.run(recipes.validate(data, source), quiet=True, echo=lambda m: None).directory
    png = tmp_path / "compare.png"
    runs = [str(ner_run.directory), str(other)]
    result = cli_runner.invoke(cli, ["report", *runs, str(tmp_path / "unfinished"), "--png", str(png)])
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| run | task | method | lr | trainable % | dev f1 | test f1 |") and len(table) == 4
    assert "| ner | lora | 0.002 |" in table[2] and "| ner | ia3 |" in table[3]
    assert "Skipped:" in result.output and png.read_bytes()[:4] == b"\x89PNG"
    rows = json.loads(cli_runner.invoke(cli, ["report", *runs, "--json", "--png", str(png)]).stdout)
    assert [r["method"] for r in rows] == ["lora", "ia3"] and rows[0]["dev"] == ner_run.metrics["dev"]["f1"]


def test_resolved_recipe_reruns(ner_run):
    data = recipes.load_yaml(ner_run.directory / "recipe.yaml")
    resolved = recipes.validate(data)
    assert resolved.method_options.r == 16 and resolved.recipe.training.epochs == 4


def test_reload_gives_identical_predictions(ner_run):
    expected = ner_run.predict(TEXTS)
    assert finished.load_run(ner_run.directory).predict(TEXTS) == expected
    # ... and in a fresh process, through the CLI
    result = subprocess.run(
        [sys.executable, "-m", "peft_hub", "predict", str(ner_run.directory), *TEXTS, "--json"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
    assert [e["start"] < e["end"] for p in expected for e in p["entities"]] == [True] * sum(len(p["entities"]) for p in expected)


def test_evaluate_matches_the_training_scores(ner_run, cli_runner):
    result = cli_runner.invoke(cli, ["evaluate", str(ner_run.directory), "--data", str(SAMPLES / "ner"), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["validation"]["f1"] == pytest.approx(ner_run.metrics["dev"]["f1"])
    assert scores["test"]["f1"] == pytest.approx(ner_run.metrics["test"]["f1"])


def test_predict_prints_entities(ner_run, cli_runner):
    result = cli_runner.invoke(cli, ["predict", str(ner_run.directory), TEXTS[1]])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(TEXTS[1])


def test_cli_adapt_classify_and_refuse_to_overwrite(tiny_model, tmp_path, cli_runner):
    out = tmp_path / "cls"
    result = cli_runner.invoke(cli, _adapt_args(tiny_model, out, "classify", "method.options.r=4", "--json"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"accuracy", "f1"} <= set(summary["dev"]) and summary["output"] == str(out)
    again = cli_runner.invoke(cli, _adapt_args(tiny_model, out, "classify"))
    assert again.exit_code == 1 and "already holds a finished run" in again.output and "--overwrite" in again.output
    loaded = finished.load_run(out)
    (prediction,) = loaded.predict(["the staff were friendly"])
    assert prediction["label"] in ("positive", "negative") and abs(sum(prediction["scores"].values()) - 1) < 1e-3


def test_help_is_fast_and_lazy():
    code = "import sys, peft_hub.cli; print(any(m in sys.modules for m in ('torch', 'transformers', 'peft')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_every_command_help_has_an_example(cli_runner):
    import click

    def commands(group, path):
        for name, command in group.commands.items():
            yield [*path, name], command
            if isinstance(command, click.Group):
                yield from commands(command, [*path, name])

    found = list(commands(cli, []))
    assert len(found) >= 18
    for path, _ in found:
        result = cli_runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, path
    assert "Examples:" in cli_runner.invoke(cli, ["--help"]).output


@pytest.mark.parametrize("task, size", [("ner", "another size"), ("classify", "the same size")])
def test_a_head_in_the_checkpoint_is_never_reused(tiny_model, tmp_path, task, size):
    """A model whose checkpoint holds a `classifier` (e.g. from a sentence-level pretraining
    objective): of another size it must not crash, of the same size it must not pass for the task's
    fresh head."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = tmp_path / "pretrained"
    BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2).save_pretrained(source)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(source)
    (source / "run.json").write_text(json.dumps({"complete": True, "kind": "pretrain", "objective": "sop"}))
    stored = load_file(str(source / "model.safetensors"))["classifier.weight"]
    said: list[str] = []
    data, where = recipes.compose(None, {"task.name": task, "method.name": "full", "model.name": str(source),
                                         "output.dir": str(tmp_path / "run"), "training.max_steps": 1,
                                         "training.learning_rate": 1e-9, "training.head_learning_rate": 1e-9})
    loaded = adapt.run(recipes.validate(data, where), quiet=True, echo=said.append)
    assert any("holds its own weights for classifier" in line and "not reused" in line for line in said)
    head = loaded.model.classifier.weight.detach()
    assert head.shape != stored.shape or not torch.allclose(head, stored, atol=1e-4)


def test_early_stopping_on_the_tasks_primary_metric(tiny_model, tmp_path):
    """With training.early_stopping_patience=1 a run whose dev F1 stops improving ends after the
    next evaluation instead of running all its epochs."""
    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "run"), "training.epochs": 8, "training.learning_rate": 1e-9,
                                     "training.head_learning_rate": 1e-9, "training.early_stopping_patience": 1})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    evaluations = [e for e in trained.metrics["history"] if "eval_f1" in e]
    assert len(evaluations) == 2 and evaluations[-1]["epoch"] == 2.0  # 2 of the 8 epochs


def test_report_to_reaches_the_trainer(tiny_model, tmp_path):
    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "run"), "training.max_steps": 2, "training.report_to": []})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    assert not (trained.directory / "tensorboard").exists()
    assert recipes.validate(data).recipe.training.report_to == []
