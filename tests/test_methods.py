"""Every registered method x every registered task on a tiny model: trains (loss goes down) on
the task's own sample data, trains exactly the parameters the method promises, saves, reloads to
identical predictions, merges where the method can. A newly installed method or task (a
third-party one too) joins the matrix automatically."""

from __future__ import annotations

import re

import pytest
import torch

from peft_hub import adapt, recipes, registry, finished
from peft_hub.anatomy import anatomy, encoder_layers
from peft_hub.errors import RecipeError
from peft_hub.recipes import DataConfig

METHODS = sorted(registry.methods())
TASKS = sorted(registry.tasks())
TEXTS = {"ner": ["Anna Schmidt flew from Paris to Tokyo .", "Toyota opened a plant in Lyon ."]}


def _numel(module):
    return sum(p.numel() for p in module.parameters())


def expected_trainable(method: str, model, options, task) -> int | None:
    """What each built-in method promises to train; None for methods this test does not know."""
    head = sum(_numel(model.get_submodule(n)) for n in task.head_modules(model))
    parts = anatomy(model, task.head_modules(model))
    layers = encoder_layers(model)
    config = model.config
    hidden = getattr(config, "hidden_size", None) or config.encoder.hidden_size  # (an encoder-decoder's halves)

    def with_roles(*roles):
        return [model.get_submodule(n) for b in parts.blocks for n in b.names(roles)]

    if method == "full":
        return _numel(model)
    if method == "freeze":  # (a decoder layer's cross-attention is in the head already)
        top = {id(p): p.numel() for layer in layers[len(layers) - options.top_layers:] for p in layer.parameters()}
        top.update({id(p): p.numel() for n in task.head_modules(model) for p in model.get_submodule(n).parameters()})
        return sum(top.values())
    if method == "lora":  # every attention projection and feed-forward layer of every layer
        every = with_roles("query", "key", "value", "qkv", "attention-out", "ffn-in", "ffn-other", "ffn-out")
        return head + sum(options.r * (m.in_features + m.out_features) for m in every)
    if method == "ia3":  # keys and values rescaled on their output, the feed-forward output on its input
        return head + sum(m.out_features for m in with_roles("key", "value", "qkv")) + sum(m.in_features for m in with_roles("ffn-out"))
    if method == "adapter":
        size = max(1, hidden // options.reduction_factor)
        per = 2 * size * hidden + size + hidden
        return head + per * len(layers) * (1 if options.config == "pfeiffer" else 2)
    if method == "prefix":
        return head + options.num_virtual_tokens * len(layers) * 2 * hidden
    return None


def short_generation(task_name: str) -> dict:
    """Overrides that keep a generation task's evaluations short (an untrained tiny decoder never
    stops before max_new_tokens): greedy, 8 tokens. Nothing for other tasks."""
    return {"task.options.num_beams": 1, "task.options.max_new_tokens": 8} if registry.get_task(task_name).encoder_decoder else {}


def _sample(task):
    """(labels, splits) of the task's own sample data."""
    splits = task.read_data(DataConfig(path=str(task.sample_data())), task.Options())
    return task.labels(splits), splits


def _outputs(output) -> list:
    return [v for k, v in output.items() if k != "loss" and torch.is_tensor(v)]


def _assert_same(a, b, where="prediction"):
    """Equal JSON-able predictions, floats to 1e-3 (scores are rounded to 4 decimals)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-3), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


#: generation trains slowly on a CPU: CI runs these methods on it, ``pytest -m matrix`` every one
GENERATION_IN_CI = {"lora", "full", "ia3", "prefix"}
PAIRS = [pytest.param(m, t, marks=[pytest.mark.matrix] if registry.get_task(t).encoder_decoder and m not in GENERATION_IN_CI else [])
         for m in METHODS for t in TASKS]


@pytest.mark.parametrize(("method_name", "task_name"), PAIRS)
def test_method_x_task(method_name, task_name, tiny_model, tmp_path):
    """Trains on the task's own sample data, saves, reloads to the same predictions and outputs,
    and merges to a model with the same outputs where the method can merge."""
    data, _ = recipes.compose(None, {
        "task.name": task_name, "method.name": method_name, "model.name": str(tiny_model),
        "output.dir": str(tmp_path / "run"), "training.epochs": 6, "training.logging_steps": 1,
        "training.learning_rate": 5e-3, "training.seed": 1, **short_generation(task_name),
    })
    task, method = registry.get_task(task_name), registry.get_method(method_name)
    refusal = method.refusal("encoder-decoder", method.Options()) if task.encoder_decoder else None
    if refusal:  # refused with the reason, before anything is read
        with pytest.raises(RecipeError, match=re.escape(refusal)):
            recipes.validate(data)
        return
    resolved = recipes.validate(data)
    options = resolved.method_options

    # the promised number of trainable parameters, from the plain model
    labels, splits = _sample(task)
    plain = task.build_model(str(tiny_model), labels)
    expected = expected_trainable(method_name, plain, options, task)

    trained = adapt.run(resolved, quiet=True, echo=lambda m: None)
    metrics = trained.metrics
    if expected is not None:
        assert metrics["trainable_params"] == expected
    assert 0 < metrics["trainable_params"] <= metrics["total_params"]
    losses = [e["loss"] for e in metrics["history"] if "loss" in e]
    assert min(losses[-4:]) < losses[0], losses

    assert_reloads_and_merges(trained, task, splits["train"][:3], tmp_path)


def assert_reloads_and_merges(trained, task, examples, tmp_path):
    """The finished run reloads to the same predictions and outputs (on ``examples``), and merges
    to a model with the same outputs where its method can merge."""
    inputs = task.sample_inputs()
    reloaded = finished.load_run(trained.directory)
    _assert_same(reloaded.predict(inputs), trained.predict(inputs))
    features = task.encode(examples, reloaded.tokenizer, trained.labels, trained.resolved.task_options)
    batch = task.collator(reloaded.tokenizer)(features)
    with torch.no_grad():
        expected_outputs = _outputs(trained.model(**batch))
        for got, want in zip(_outputs(reloaded.model(**batch)), expected_outputs, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    if trained.resolved.method.refusal("merge", trained.resolved.method_options):
        return
    merged = task.build_model(str(adapt.merge(trained.directory, tmp_path / "merged")), trained.labels)
    merged.eval()
    with torch.no_grad():
        for got, want in zip(_outputs(merged(**batch)), expected_outputs, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

def test_prefix_receives_gradients_and_changes_outputs(tiny_model):
    task, method = registry.get_task("ner"), registry.get_method("prefix")
    model = task.build_model(str(tiny_model), ["O", "B-PER", "I-PER"])
    batch = {"input_ids": torch.tensor([[2, 40, 41, 42, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    model.eval()
    with torch.no_grad():
        base = model(**batch).logits.clone()
    wrapped = method.apply(model, method.Options(num_virtual_tokens=4), task)
    wrapped.eval()
    with torch.no_grad():
        torch.nn.init.normal_(wrapped.prompt_encoder["default"].embedding.weight, std=1.0)
        with_prefix = wrapped(**batch).logits
    assert not torch.allclose(with_prefix, base)
    wrapped.train()
    wrapped(**batch, labels=torch.tensor([[-100, 1, 2, 0, -100]])).loss.backward()
    grad = wrapped.prompt_encoder["default"].embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_adapter_starts_as_identity_and_locates_layers(tiny_model):
    task, method = registry.get_task("classify"), registry.get_method("adapter")
    model = task.build_model(str(tiny_model), ["a", "b"])
    model.eval()
    batch = {"input_ids": torch.tensor([[2, 40, 41, 3]])}
    with torch.no_grad():
        base = model(**batch).logits.clone()
        adapted = method.apply(model, method.Options(config="houlsby"), task)
        torch.testing.assert_close(adapted(**batch).logits, base)
    bottlenecks = [n for n, m in adapted.named_modules() if type(m).__name__ == "Bottleneck"]
    assert len(bottlenecks) == 2 * 2  # 2 layers x (after attention, after feed-forward)


def test_adapter_refuses_unknown_architectures():
    from peft_hub.errors import ModelError

    class NotBert(torch.nn.Module):
        pass

    with pytest.raises(ModelError, match="Cannot find the encoder layers of NotBert"):
        encoder_layers(NotBert())


@pytest.mark.parametrize("method_name", ["lora", "ia3", "full"])
def test_merge_round_trip(method_name, tiny_model, tmp_path):
    from transformers import AutoModelForTokenClassification

    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": method_name, "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "run"), "training.epochs": 1,
                                     "training.learning_rate": 5e-3})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    out = adapt.merge(trained.directory, tmp_path / "merged")
    merged = AutoModelForTokenClassification.from_pretrained(out)
    merged.eval()
    batch = trained.tokenizer(TEXTS["ner"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, trained.model(**batch).logits, rtol=1e-4, atol=1e-4)
    assert merged.config.id2label[1] == trained.labels[1]


@pytest.mark.parametrize("method_name", ["adapter", "prefix"])
def test_unmergeable_methods_say_why(method_name, tiny_model, tmp_path, cli_runner):
    from peft_hub.cli import cli

    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": method_name, "model.name": str(tiny_model),
                                     "output.dir": str(tmp_path / "run"), "training.epochs": 1})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    result = cli_runner.invoke(cli, ["merge", str(trained.directory), "--output", str(tmp_path / "m")])
    assert result.exit_code == 1 and f"Method {method_name!r} cannot be merged: " in result.output
    assert not (tmp_path / "m").exists()
