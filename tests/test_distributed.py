"""Two processes over gloo on CPU (torchrun under --num-processes) train in sync and reach what
one process reaches with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture
def tiny_no_dropout(tiny_model, tmp_path):
    """The tiny model without dropout, so that one and two processes can match closely."""
    directory = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_model, directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _adapt(model, out, *extra):
    command = [sys.executable, "-m", "peft_hub", "adapt", "--method", "lora", "--task", "ner", "--model", str(model),
               "--output", str(out), "--max-steps", "3", "--lr", "5e-3", "--quiet", "--json",
               "training.batching=sequential", "method.options.dropout=0", "training.warmup_ratio=0", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_match_one_with_the_same_global_batch(tiny_no_dropout, tmp_path):
    one = _adapt(tiny_no_dropout, tmp_path / "one", "--batch-size", "16")
    two = _adapt(tiny_no_dropout, tmp_path / "two", "--batch-size", "8", "--num-processes", "2")
    assert "Starting 2 processes" in two.stderr
    single, double = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints
    assert two.stdout.count('"output"') == 1
    assert double["train_steps"] == single["train_steps"] == 3  # inside the first epoch: equal global batches
    assert double["train_tokens"] == single["train_tokens"]  # every token seen once per step, across ranks
    for split in ("dev", "test"):
        assert double[split]["loss"] == pytest.approx(single[split]["loss"], rel=1e-2)
        assert double[split]["accuracy"] == pytest.approx(single[split]["accuracy"], abs=0.02)
    assert (tmp_path / "two" / "run.json").exists() and not (tmp_path / "two" / "checkpoints").exists()
