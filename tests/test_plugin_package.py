"""A third-party plugin package (tests/plugin_package: a method, a task with a lower-is-better
regression metric, an objective with its own held-out score), installed with real distribution
metadata, works through every command like a built-in one."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from conftest import ROOT
from peft_hub import registry
from peft_hub.cli import cli

PACKAGE = ROOT / "tests" / "plugin_package"


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """peft-hub-toy importable with the dist-info that pip writes (METADATA, entry_points.txt)."""
    site = tmp_path / "site"
    info = site / "peft_hub_toy-0.1.0.dist-info"
    info.mkdir(parents=True)
    shutil.copy(PACKAGE / "peft_hub_toy.py", site)
    shutil.copytree(PACKAGE / "samples", site / "samples")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: peft-hub-toy\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[peft_hub]\ntoy = peft_hub_toy\n")
    monkeypatch.syspath_prepend(str(site))
    registry.reset()
    yield site
    monkeypatch.undo()
    sys.modules.pop("peft_hub_toy", None)
    registry.reset()
    registry.load_plugins()


def test_its_components_are_listed_with_their_distribution(toy, cli_runner):
    report = json.loads(cli_runner.invoke(cli, ["plugins"]).stdout)
    row = next(r for r in report["plugins"] if r["name"] == "toy")
    assert row["distribution"] == "peft-hub-toy"
    assert row["registered"] == {"methods": ["bitfit"], "tasks": ["textscore"], "objectives": ["rtd"]}
    assert report["failed"] == [] and report["conflicts"] == []


def test_its_task_and_method_train_predict_evaluate_merge_and_report(toy, tiny_model, tmp_path, cli_runner):
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["adapt", "--task", "textscore", "--method", "bitfit", "--model", str(tiny_model),
                                     "--output", str(out), "--epochs", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary_metric"] == "mae" and metrics["greater_is_better"] is False
    assert "mae" in metrics["test"] and "majority_mae" not in metrics["test"]  # no constant-label floor for a regression
    assert "mae" in result.output.split("split")[1]  # the summary shows the task's own metric
    predicted = cli_runner.invoke(cli, ["predict", str(out), "the food was great", "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert isinstance(json.loads(predicted.stdout)[0]["score"], float)
    scored = cli_runner.invoke(cli, ["evaluate", str(out), "--data", str(toy / "samples" / "test.tsv"), "--json"])
    assert json.loads(scored.stdout)["train"]["mae"] == pytest.approx(metrics["test"]["mae"], abs=1e-4)
    merged = cli_runner.invoke(cli, ["merge", str(out), "--output", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    report = cli_runner.invoke(cli, ["report", str(out), "--json", "--png", str(tmp_path / "r.png")])
    (row,) = json.loads(report.stdout)
    assert row["metric"] == "mae" and row["test"] == metrics["test"]["mae"]


def test_its_objective_reports_its_own_metric_and_its_head_is_never_a_task_head(toy, tiny_model, tmp_path, cli_runner):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(line.split("\t")[0] for line in (PACKAGE / "samples" / "train.tsv").read_text().splitlines()))
    out = tmp_path / "dapt"
    result = cli_runner.invoke(cli, ["pretrain", "--objective", "rtd", "--method", "bitfit", "--model", str(tiny_model),
                                     "--data", str(corpus), "--output", str(out), "--max-steps", "8", "--block-size", "32",
                                     "--json"])
    assert result.exit_code == 0, result.output
    assert "Training text: 114 documents" in result.stderr  # one per document: 120 lines, every 20th held out
    metrics = json.loads(result.stdout)
    assert metrics["primary_metric"] == "accuracy" and metrics["greater_is_better"] is True
    assert set(metrics["heldout_after"]) == {"accuracy", "tokens"}
    assert json.loads((out / "run.json").read_text())["objective"] == "rtd"
    # its 2-label head is called `classifier`, like the NER head: adapt must start that head fresh
    adapted = cli_runner.invoke(cli, ["adapt", "--model", str(out), "--task", "ner", "--method", "lora",
                                      "--output", str(tmp_path / "ner"), "--max-steps", "2"])
    assert adapted.exit_code == 0, adapted.output
    assert "holds its own weights for classifier" in adapted.output and "the ner head starts fresh" in adapted.output


OLD_TASK = '''
import peft_hub
{declaration}

class OldTask(peft_hub.Task):
    """Written for the contract before versioning: metrics from three arrays, predict from texts."""
    name = "oldtask"
    peft_task_type = "SEQ_CLS"

    def compute_metrics(self, predictions, label_ids, labels):
        return {{"accuracy": 0.0}}

    def predict(self, model, tokenizer, texts, labels, options):
        return []


@peft_hub.hookimpl
def register_tasks(register):
    register(OldTask())
'''


def _install_old(site, declaration: str) -> None:
    """peft-hub-old: a task written for an older contract, installed with dist-info."""
    info = site / "peft_hub_old-0.3.0.dist-info"
    info.mkdir(parents=True)
    (site / "peft_hub_old.py").write_text(OLD_TASK.format(declaration=declaration))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: peft-hub-old\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[peft_hub]\nold = peft_hub_old\n")


@pytest.mark.parametrize("declaration, said", [
    ("", ["'old' (from distribution peft-hub-old)", "declares no plugin API version", "What changed: API 2:",
          "peft_hub/PLUGIN_API.md"]),
    ("PEFT_HUB_API = 2", ["'old' (from distribution peft-hub-old)", "was written for another plugin contract",
                          "OldTask.compute_metrics(self, predictions, label_ids, labels) does not fit the contract's "
                          "Task.compute_metrics(self, evaluation", "OldTask.predict(self, model, tokenizer, texts, labels",
                          "peft_hub/PLUGIN_API.md"]),
])
def test_a_plugin_for_the_previous_contract_is_refused_before_any_work(tmp_path, monkeypatch, cli_runner, tiny_model,
                                                                        declaration, said):
    site = tmp_path / "site"
    _install_old(site, declaration)
    monkeypatch.syspath_prepend(str(site))
    registry.reset()
    try:
        listed = json.loads(cli_runner.invoke(cli, ["plugins"]).stdout)
        failure = next(f for f in listed["failed"] if f["name"] == "old")
        assert failure["distribution"] == "peft-hub-old" and "oldtask" not in registry.tasks()
        out = tmp_path / "run"
        result = cli_runner.invoke(cli, ["adapt", "--task", "oldtask", "--method", "lora", "--model", str(tiny_model),
                                         "--output", str(out)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "Unknown task 'oldtask'" in result.output and "could not be loaded" in result.output
        for text in said:
            assert text in result.output, (text, result.output)
        assert not out.exists()  # refused while the recipe is validated: nothing read, nothing written
    finally:
        monkeypatch.undo()
        sys.modules.pop("peft_hub_old", None)
        registry.reset()
        registry.load_plugins()
