"""Every encoder family a user brings: tiny random models of BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa-v2
(as v3), DistilBERT, ALBERT, MPNet, ModernBERT, CamemBERT, and MobileBERT (named in no table of
peft-hub), built from transformers' own configs. Each method must adapt the attention and the
feed-forward of every encoder layer (ALBERT: its one shared layer), reload to the same outputs and
merge to the same outputs; prefix tuning trains where the family takes past key values (through
peft) and on DeBERTa (in-house), and is refused, naming the family, before any data is read elsewhere.

CI runs the fast subset (each family x lora, ia3, adapter on NER, prefix everywhere, the LoRA
variants on three families); ``pytest -m matrix`` runs every family x every method x every task."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FAMILIES
from test_methods import assert_reloads_and_merges, short_generation

from peft_hub import adapt, recipes, registry
from peft_hub.anatomy import anatomy
from peft_hub.errors import ModelError, PeftHubError, RecipeError

#: the roles each method adapts by default in every encoder layer (None: it varies by family)
ATTENTION_AND_FFN = {"attention-out", "ffn-in", "ffn-out"}
EXPECTED_ROLES = {
    "ia3": {"ffn-out"},  # + key and value, or the fused projection
    "adapter": {"ffn-out"},  # Pfeiffer: after the feed-forward output
    "prefix": set(),  # no layer changes: a prompt encoder outside them
    "freeze": ATTENTION_AND_FFN,
    "full": ATTENTION_AND_FFN,
}
TAKES_PREFIX = {"bert", "roberta", "xlm-roberta", "electra", "camembert", "deberta-v2"}


def _run(model_dir, tmp_path, method, task="ner", steps=2, **options):
    overrides = {"task.name": task, "method.name": method, "model.name": str(model_dir), "output.dir": str(tmp_path / "run"),
                 "training.max_steps": steps, "training.learning_rate": 5e-3, "training.seed": 1, **short_generation(task),
                 **{f"method.options.{k}": v for k, v in options.items()}}
    data, source = recipes.compose(None, overrides)
    return adapt.run(recipes.validate(data, source), quiet=True, echo=lambda m: None)


def _check(trained, family, method, task, tmp_path):
    """Every layer adapted where the method promises; reload and merge give the same outputs."""
    report = trained.metrics["adapted"]
    assert report["family"] == family
    roles = set(report["modules"])
    if method == "prefix":
        # peft's prompt encoder, or the in-house one (DeBERTa)
        assert report["outside_layers"] in (["prompt_encoder"], ["prefix_encoder"]) and roles == set()
    else:
        assert report["layers_adapted"] == report["layers"], report
        assert EXPECTED_ROLES.get(method, ATTENTION_AND_FFN) <= roles, report
        if method != "adapter":  # the Pfeiffer adapter sits after the feed-forward output only
            assert roles & {"query", "key", "value", "qkv"}, report
        assert all(n == report["layers"] for n in report["modules"].values()), report
    resolved_task = registry.get_task(task)
    examples = resolved_task.read_data(recipes.DataConfig(path=str(resolved_task.sample_data())), resolved_task.Options())
    assert_reloads_and_merges(trained, resolved_task, examples["train"][:3], tmp_path)

#: families transformers can run as a decoder (a generation task warm-starts one; the others are refused)
DECODERS = {"bert", "roberta", "xlm-roberta", "electra", "camembert"}


def _train_or_refuse(family_model, family, method, task, tmp_path, monkeypatch):
    if registry.get_task(task).encoder_decoder:
        if method == "prefix":
            with pytest.raises(RecipeError, match="trains an encoder-decoder, and 'prefix' cannot adapt one"):
                _run(family_model(family), tmp_path, method, task)
            return
        if family not in DECODERS:
            with pytest.raises(ModelError, match=rf"{family} model, which transformers cannot run as a decoder"):
                _run(family_model(family), tmp_path, method, task)
            return
    if method == "prefix" and family not in TAKES_PREFIX:
        monkeypatch.setattr(adapt, "data_config_or_sample", lambda *a, **k: pytest.fail("data was read"))
        with pytest.raises(ModelError, match=rf"prefix.*\({family}\) takes no past key values"):
            _run(family_model(family), tmp_path, method, task)
        return
    if method == "freeze" and family == "albert":  # one shared layer: top_layers=2 is refused with the reason
        with pytest.raises(PeftHubError, match="shares the weights of 1 across its 2 positions"):
            _run(family_model(family), tmp_path, method, task)
        return
    _check(_run(family_model(family), tmp_path, method, task), family, method, task, tmp_path)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", ["lora", "ia3", "adapter", "prefix"])
def test_family_x_method(family, method, family_model, tmp_path, monkeypatch):
    _train_or_refuse(family_model, family, method, "ner", tmp_path, monkeypatch)


@pytest.mark.matrix
@pytest.mark.parametrize("task", sorted(registry.tasks()))
@pytest.mark.parametrize("method", sorted(registry.methods()))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_full_family_matrix(family, method, task, family_model, tmp_path, monkeypatch):
    _train_or_refuse(family_model, family, method, task, tmp_path, monkeypatch)


@pytest.mark.parametrize("family", ["deberta-v2", "modernbert", "albert"])
@pytest.mark.parametrize("variant", [
    {"use_dora": True}, {"use_rslora": True}, {"init_lora_weights": "pissa"}, {"init_lora_weights": "olora"},
    {"init_lora_weights": "eva"}, {"init_lora_weights": "orthogonal"},
])
def test_lora_variants(family, variant, family_model, tmp_path):
    """Each LoRA variant trains on families other than BERT, reloads on the untouched base (PiSSA
    and OLoRA are converted at save) and merges to the same outputs."""
    trained = _run(family_model(family), tmp_path, "lora", steps=3, **variant)
    _check(trained, family, "lora", "ner", tmp_path)
    config = (trained.directory / "adapter" / "adapter_config.json").read_text()
    if variant.get("init_lora_weights") in ("pissa", "olora"):
        assert '"r": 32' in config  # converted: a plain LoRA of twice the rank on the untouched base


@pytest.mark.parametrize("task", sorted(registry.tasks()))
def test_eva_takes_every_task_batch(task, family_model, tmp_path):
    """EVA's data pass reads the task's own training batches, whatever their labels' shape (one per
    token, one per example, one vector per example, spans)."""
    _check(_run(family_model("bert"), tmp_path, "lora", task=task, init_lora_weights="eva"), "bert", "lora", task, tmp_path)


def test_saved_targets_reach_only_encoder_layers_of_any_model_of_the_base(tiny_model, tmp_path):
    """With 20 or more targets peft saves the shortest suffixes that pick them in the training model
    (``dense`` in an NER model, which has no pooler). The saved adapter must name the same layers in
    any model of its base: the bare encoder with a pooler that ``serve`` shares, too."""
    import re

    from transformers import AutoModel, BertConfig, BertModel

    deeper = tmp_path / "four-layers"
    config = BertConfig.from_pretrained(tiny_model)
    config.num_hidden_layers = 4  # 24 linear layers: peft shortens the list
    BertModel(config).save_pretrained(deeper)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (tiny_model / name).exists():
            (deeper / name).write_bytes((tiny_model / name).read_bytes())
    trained = _run(deeper, tmp_path, "lora", steps=1)
    targets = json.loads((trained.directory / "adapter" / "adapter_config.json").read_text())["target_modules"]
    with_pooler = [name for name, _ in AutoModel.from_pretrained(deeper).named_modules()]
    reached = [n for n in with_pooler if any(n == t or n.endswith("." + t) for t in targets)]
    assert len(reached) == 4 * 6 and all(re.match(r"encoder\.layer\.\d\.", n) for n in reached), reached


@pytest.mark.parametrize("projection", [False, True])
def test_deberta_prefix_leaves_the_tokens_attention_as_it_was(projection, family_model, monkeypatch):
    """The in-house DeBERTa prefix only adds columns: with them masked out, the model gives the base
    model's outputs exactly (the tokens' relative-position bias and scaling untouched); with them
    open, the outputs change and the prefix gets gradients."""
    from peft_hub_plugins.prefix import deberta

    task, method = registry.get_task("classify"), registry.get_method("prefix")
    model = task.build_model(str(family_model("deberta-v2")), ["a", "b"])
    model.eval()
    batch = {"input_ids": torch.tensor([[1, 40, 41, 42, 2], [1, 43, 2, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}
    with torch.no_grad():
        base = model(**batch).logits.clone()
    model = method.apply(model, method.Options(num_virtual_tokens=3, projection=projection), task)
    opened = deberta.with_prefix_columns
    monkeypatch.setattr(deberta, "with_prefix_columns", lambda mask, n: torch.cat([mask.new_zeros(*mask.shape[:-1], n), mask], -1))
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, base, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(deberta, "with_prefix_columns", opened)
    with torch.no_grad():
        assert not torch.allclose(model(**batch).logits, base)
    model.train()
    model(**batch, labels=torch.tensor([0, 1])).loss.backward()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith(("prefix_encoder.", "classifier.", "pooler.")) for n in trained), trained
    assert model.prefix_encoder.embedding.weight.grad.abs().sum() > 0


def test_user_targets_are_checked_against_the_family(family_model, tmp_path):
    """BERT's names on DistilBERT match nothing; names that reach only some layers half-adapt:
    both refused with the model's own layout, before training."""
    with pytest.raises(ModelError, match=r"matches no layer of DistilBertForTokenClassification.*attention\.q_lin \(query\)"):
        _run(family_model("distilbert"), tmp_path, "lora", target_modules=["query", "value"])
    with pytest.raises(ModelError, match=r"only 1 of the 2 encoder layers"):
        _run(family_model("bert"), tmp_path, "lora", target_modules=["layer.0.attention.self.query"])
    trained = _run(family_model("bert"), tmp_path, "lora", target_modules=["query"], layers_to_transform=[1])
    assert trained.metrics["adapted"]["modules"] == {"query": 1} and trained.metrics["adapted"]["layers_adapted"] == 1


def test_unreadable_architecture_is_refused_by_name():
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])

    with pytest.raises(ModelError, match=r"Cannot find the encoder layers of Plain"):
        anatomy(Plain())
