"""8-bit and 4-bit bases through bitsandbytes, on the CPU rules of KNOWN.md."""

from __future__ import annotations

import json

import pytest

from peft_hub import adapt, recipes, finished
from peft_hub.errors import RecipeError

pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (pip install 'peft-hub[bnb]')")


@pytest.mark.parametrize(("quant", "method", "task"), [(q, m, t) for q in ("8bit", "4bit") for m, t in (("lora", "ner"), ("adapter", "ner"))]
                         + [("4bit", "lora", "translate")])
def test_quantized_base_trains_evaluates_and_reloads(quant, method, task, tiny_model, tmp_path):
    data, _ = recipes.compose(None, {
        "task.name": task, "method.name": method, "model.name": str(tiny_model), "model.quantization": quant,
        "output.dir": str(tmp_path / "run"), "training.epochs": 2, "training.learning_rate": 5e-3,
    })
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)  # train -> eval -> train -> eval
    metrics = json.loads((trained.directory / "metrics.json").read_text())
    assert metrics["quantization"] == quant
    full = json.loads(json.dumps(metrics))  # the fp32 size of the same base, for comparison
    assert full["base_weight_memory_mb"] > 0
    texts = ["Anna Schmidt flew to Paris ."]
    assert finished.load_run(trained.directory).predict(texts) == trained.predict(texts)
    import bitsandbytes as bnb

    layers = [m for m in trained.model.modules() if isinstance(m, (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit))]
    heads = tuple(trained.resolved.task.head_modules(trained.model))  # (a generation task: the fresh cross-attention)
    inner = trained.model.get_base_model() if hasattr(trained.model, "get_base_model") else trained.model
    assert layers and not any(n.startswith(heads) for n, m in inner.named_modules() if m in layers)
    assert not any("classifier" in n for n, m in trained.model.named_modules() if m in layers)


def test_quantized_merge_reloads_full_precision(tiny_model, tmp_path):
    from transformers import AutoModelForTokenClassification

    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "model.quantization": "8bit", "output.dir": str(tmp_path / "run"),
                                     "training.epochs": 1})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    merged = AutoModelForTokenClassification.from_pretrained(adapt.merge(trained.directory, tmp_path / "m"))
    assert all(p.dtype.is_floating_point for p in merged.parameters())


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_methods_that_update_base_weights_refuse_quantization(method):
    with pytest.raises(RecipeError, match=f"the method '{method}' cannot train on a 4bit base: it updates the base weights"):
        recipes.validate({"task": {"name": "ner"}, "method": {"name": method}, "model": {"quantization": "4bit"}})


def test_missing_bitsandbytes_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(RecipeError, match=r"needs bitsandbytes, which is not installed: pip install 'peft-hub\[bnb\]'"):
        recipes.validate({"task": {"name": "ner"}, "method": {"name": "lora"}, "model": {"quantization": "8bit"}})


@pytest.mark.parametrize("objective", ["simcse", "sop", "mlm+sop"])
def test_sentence_objectives_train_on_an_8bit_base(objective, tiny_model, tmp_path, cli_runner):
    from conftest import SAMPLES
    from peft_hub.cli import cli

    sentences = [line.split("\t")[1] for line in (SAMPLES / "pair" / "train.tsv").read_text().splitlines()[1:]]
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)) + "\n")
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["pretrain", "--objective", objective, "--method", "lora", "--quantize", "8bit",
                                     "--model", str(tiny_model), "--data", str(docs), "--output", str(out), "--max-steps", "3",
                                     "--batch-size", "8", "--validation-split", "0.2", "training.head_warmup_steps=1", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["quantization"] == "8bit"
    from transformers import AutoModel

    AutoModel.from_pretrained(out)  # merged into a full-precision encoder


def test_loftq_starts_closer_to_the_full_precision_base(tiny_model, tmp_path):
    """LoftQ (``init_lora_weights=loftq`` with ``--quantize 4bit``) sets LoRA's start so that the 4-bit
    base plus LoRA is nearer the full-precision model than the 4-bit base alone; the run trains and
    reloads."""
    import torch

    from peft_hub import registry
    from peft_hub.models import prepare_quantized, quantization_kwargs

    task, method = registry.get_task("ner"), registry.get_method("lora")
    labels = ["O", "B-PER", "I-PER"]
    batch = {"input_ids": torch.tensor([[2, 40, 41, 42, 43, 44, 3]]), "attention_mask": torch.ones(1, 7, dtype=torch.long)}
    torch.manual_seed(0)
    full = task.build_model(str(tiny_model), labels).eval()
    torch.manual_seed(0)
    quantized = task.build_model(str(tiny_model), labels, **quantization_kwargs("4bit", task.head_modules(full)))
    options = method.Options(init_lora_weights="loftq")
    model = method.apply(prepare_quantized(quantized, "4bit"), options, task).eval()
    with torch.no_grad():
        want = full(**batch).logits
        start = model(**batch).logits  # LoRA's B starts at zero: the 4-bit base alone
        method.prepare(model, options, iter(()))
        fitted = model(**batch).logits
    assert (fitted - want).norm() < 0.8 * (start - want).norm()

    data, _ = recipes.compose(None, {"task.name": "ner", "method.name": "lora", "model.name": str(tiny_model),
                                     "model.quantization": "4bit", "method.options.init_lora_weights": "loftq",
                                     "output.dir": str(tmp_path / "run"), "training.max_steps": 3})
    trained = adapt.run(recipes.validate(data), quiet=True, echo=lambda m: None)
    texts = ["Anna Schmidt flew to Paris ."]
    assert finished.load_run(trained.directory).predict(texts) == trained.predict(texts)
