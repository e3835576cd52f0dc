"""The method contract's training hooks: a preparation pass before training, Trainer callbacks that
see the step and the total, an optimizer of the method's own, and the method's own checkpoint
save/load at every checkpoint; proven by a recording method and by the built-in adalora and
loraplus plugins."""

from __future__ import annotations

import json

import pytest

import peft_hub
from conftest import train_tiny
from peft_hub import registry


class Recording(peft_hub.StateDictMethod):
    """Trains the head and the top layer's output, and records every hook the core calls."""

    name = "recording"
    cannot_merge = None
    calls: list = []

    def apply(self, model, options, task):
        peft_hub.train_only(model, lambda name: False)
        peft_hub.train_head(model, task)
        peft_hub.encoder_layers(model)[-1].output.dense.requires_grad_(True)
        return model

    def prepare(self, model, options, batches):
        batch = next(batches)
        self.calls.append(("prepare", sorted(batch), batch["input_ids"].shape[0]))

    def callbacks(self, model, options):
        from transformers import TrainerCallback

        calls = self.calls

        class Steps(TrainerCallback):
            def on_optimizer_step(self, args, state, control, model=None, **kwargs):
                calls.append(("step", state.global_step, state.max_steps, model is not None))

        return [Steps()]

    def optimizer(self, model, options, learning_rate, weight_decay):
        import torch

        self.calls.append(("optimizer", learning_rate))
        return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=learning_rate)

    def save_checkpoint(self, model, directory):
        self.calls.append(("save_checkpoint", directory.name))
        super().save_checkpoint(model, directory)

    def load_checkpoint(self, model, directory):
        self.calls.append(("load_checkpoint", directory.name))
        super().load_checkpoint(model, directory)


class Plugin:
    @peft_hub.hookimpl
    def register_methods(self, register):
        register(Recording())


@pytest.fixture
def recording():
    Recording.calls.clear()
    registry.pm.register(Plugin(), name="recording-test")
    yield Recording.calls
    registry.pm.unregister(name="recording-test")


def test_the_core_calls_every_training_hook(tiny_model, tmp_path, recording):
    run = train_tiny(tiny_model, tmp_path / "run", "ner", "recording", **{"training.max_steps": 12, "training.save_steps": 4,
                                                                       "training.learning_rate": 1e-7, "training.head_learning_rate": 1e-7})
    kinds = [call[0] for call in recording]
    assert recording[0] == ("prepare", ["attention_mask", "input_ids", "labels", "token_type_ids"], 16)
    assert kinds[1] == "optimizer" and recording[1][1] == pytest.approx(1e-7)
    steps = [call for call in recording if call[0] == "step"]
    assert [s[1] for s in steps] == list(range(12)) and {s[2] for s in steps} == {12} and all(s[3] for s in steps)
    assert [c for c in recording if c[0] == "save_checkpoint"] == [("save_checkpoint", f"checkpoint-{n}") for n in (4, 8, 12)]
    # a rate too small to change the dev score: the first checkpoint stays the best and is reloaded by the method
    assert run.metrics["best_step"] == 4 and recording[-1] == ("load_checkpoint", "checkpoint-4")


def test_adalora_allocates_its_rank_budget(tiny_model, tmp_path):
    train = registry.get_task("ner").sample_data() / "train.txt"  # no dev: the last step is kept, not an early best
    run = train_tiny(tiny_model, tmp_path / "ada", "ner", "adalora", **{"training.max_steps": 40, "training.learning_rate": 1e-2,
                                                                      "method.options.delta_t": 2, "data.train": str(train),
                                                                      "data.validation_split": 0})
    config = json.loads((run.directory / "adapter" / "adapter_config.json").read_text())
    assert config["total_step"] == 40 and config["tinit"] == 4 and config["tfinal"] == 8
    ranks = config["rank_pattern"]
    assert ranks, "the schedule never ran"
    kept = [sum(mask) for mask in ranks.values()]
    # the budget: target_r (8) on average out of init_r (12), spread unevenly over the layers
    assert sum(kept) == 8 * len(kept) and len(set(kept)) > 1


def test_loraplus_trains_b_faster_than_a(tiny_model):
    from peft_hub import models, recipes

    data, _ = recipes.compose(None, {"task.name": "classify", "method.name": "loraplus", "model.name": str(tiny_model),
                                     "method.options.lr_ratio": 8})
    resolved = recipes.validate(data)
    model = resolved.task.build_model(models.resolve(str(tiny_model)), ["a", "b"])
    model = resolved.method.apply(model, resolved.method_options, resolved.task)
    optimizer = resolved.method.optimizer(model, resolved.method_options, 1e-3, 0.0)
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    a = [rate[id(p)] for n, p in named.items() if "lora_A" in n]
    b = [rate[id(p)] for n, p in named.items() if "lora_B" in n]
    assert a and set(a) == {1e-3} and set(b) == {8e-3}


def test_a_task_may_score_a_split_itself(tiny_model, tmp_path):
    """evaluate_split: predictions the Trainer's loop could not concatenate (here: texts) are
    scored by the task; the best checkpoint is kept by its primary metric."""
    from peft_hub_plugins.classify import Classify

    class OwnScoring(Classify):
        name = "ownscore"
        primary_metric = "agreement"
        summary_metrics = ("agreement",)

        def evaluate_split(self, model, tokenizer, features, examples, labels, options):
            predicted = self.predict(model, tokenizer, [{"text": e.text} for e in examples], labels, options)
            return {"agreement": sum(p["label"] == e.label for p, e in zip(predicted, examples)) / len(examples),
                    "examples": float(len(examples))}

    class Plugin:
        @peft_hub.hookimpl
        def register_tasks(self, register):
            register(OwnScoring())

    registry.pm.register(Plugin(), name="ownscore-test")
    try:
        run = train_tiny(tiny_model, tmp_path / "own", "ownscore", **{"training.epochs": 2})
    finally:
        registry.pm.unregister(name="ownscore-test")
    assert set(run.metrics["dev"]) >= {"agreement", "examples"} and set(run.metrics["test"]) >= {"agreement", "examples"}
    assert run.metrics["primary_metric"] == "agreement" and 0 <= run.metrics["test"]["agreement"] <= 1
    assert any("eval_agreement" in entry for entry in run.metrics["history"])
