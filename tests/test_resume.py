"""Checkpoints and resume: a run killed with SIGKILL resumes from its newest complete checkpoint
and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from peft_hub import recipes
from peft_hub.errors import PeftHubError
from peft_hub.train import COMPLETE, newest_complete_checkpoint


def _command(tiny_model, out, *extra, method="lora", task="ner"):
    return [sys.executable, "-m", "peft_hub", "adapt", "--method", method, "--task", task, "--model", str(tiny_model),
            "--output", str(out), "--max-steps", "48", "--lr", "5e-3", "--quiet", "--json",
            "training.save_steps=8", "training.logging_steps=4", *extra]


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


# lora: peft's own layers; adalora: a method whose rank schedule runs in callbacks and whose
# checkpoints carry its rank pattern and importance averages; loraplus: an optimizer of its own;
# multilabel: a threshold tuned on dev at each checkpoint, which test is scored with; EVA: ranks
# redistributed by a data pass before training, which the resumed run must repeat to fit its checkpoint
@pytest.mark.parametrize("method, task, options", [
    ("lora", "ner", ()), ("adalora", "ner", ()), ("loraplus", "ner", ()), ("lora", "multilabel", ()),
    ("lora", "ner", ("method.options.init_lora_weights=eva",)),
], ids=["lora-ner", "adalora-ner", "loraplus-ner", "lora-multilabel", "lora-eva-ner"])
def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_model, tmp_path, method, task, options):
    # the uninterrupted run goes beside the one that is killed (each takes one core)
    reference = subprocess.Popen(_command(tiny_model, tmp_path / "ref", *options, method=method, task=task),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(tiny_model, out, *options, method=method, task=task), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (out / "checkpoints" / "checkpoint-16" / COMPLETE).exists():
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "run.json").exists(), "the run finished before it could be killed"
    assert newest_complete_checkpoint(out / "checkpoints") is not None
    reference_out, reference_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, reference_err

    resumed = subprocess.run(_command(tiny_model, out, "--resume", *options, method=method, task=task), capture_output=True, text=True,
                             env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    ref, res = json.loads(reference_out), json.loads(resumed.stdout)
    assert res["train_steps"] == ref["train_steps"] == 48
    for split in ("dev", "test"):
        for key in ("precision", "recall", "f1", "loss") if task == "ner" else ("micro_f1", "macro_f1", "threshold", "loss"):
            assert res[split][key] == pytest.approx(ref[split][key], abs=1e-6), (split, key)


@pytest.mark.parametrize("method", ["adalora", "lora"])
def test_an_early_best_checkpoint_reloads_through_the_method(tiny_model, tmp_path, method):
    """The best dev score comes first (a rate too small to move it: ties keep the first), so the
    end of training reloads a checkpoint written before AdaLoRA's ranks were pruned."""
    from conftest import train_tiny
    from peft_hub import finished

    run = train_tiny(tiny_model, tmp_path / method, "ner", method, **{"training.max_steps": 40, "training.save_steps": 8,
                                                                    "training.learning_rate": 1e-7, "training.head_learning_rate": 1e-7})
    assert run.metrics["best_step"] == 8 and run.metrics["train_steps"] == 40
    texts = ["Anna Schmidt flew from Paris to Tokyo ."]
    assert finished.load_run(run.directory).predict(texts) == run.predict(texts)


def test_incomplete_checkpoints_are_ignored(tmp_path):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / COMPLETE).write_text("")
    (tmp_path / "checkpoint-20").mkdir()  # killed while saving
    assert newest_complete_checkpoint(tmp_path).name == "checkpoint-10"


def test_resume_without_checkpoints_is_refused(tiny_model, tmp_path):
    from peft_hub import adapt

    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "none"), "output.resume": True})
    with pytest.raises(PeftHubError, match="has no checkpoints to resume from"):
        adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)


def test_fp16_without_a_gpu_is_a_clear_error(tiny_model, tmp_path):
    import torch

    from peft_hub import adapt

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "fp16"), "training.precision": "fp16"})
    with pytest.raises(PeftHubError, match="fp16 needs a CUDA GPU; on this machine use bf16"):
        adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)


def test_bf16_grad_accum_and_checkpointing_train(tiny_model, tmp_path):
    from peft_hub import adapt

    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "bf16"), "training.precision": "bf16",
                                     "training.grad_accum": 2, "training.gradient_checkpointing": True,
                                     "training.epochs": 1})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    assert trained.metrics["train_steps"] == 2  # 60 sentences / (16 x 2)
