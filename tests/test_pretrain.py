"""Continued pretraining: text readers, blocks, masking statistics, perplexity, the pretrain ->
adapt chain on a tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import SAMPLES, shared_data
from peft_hub import recipes, registry
from peft_hub.cli import cli
from peft_hub.errors import RecipeError
from peft_hub_plugins.mlm import perplexity
from peft_hub.text import BlockBuilder, build_blocks, documents, documents_in_file, hold_out, text_files

SENTENCES = [line.split("\t")[0] for line in (SAMPLES / "classify" / "train.tsv").read_text().splitlines()[1:]]


@pytest.fixture
def corpus(tmp_path):
    words = " ".join(SENTENCES).split()
    lines = [" ".join(words[(i * 7) % len(words):][:12]) for i in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_formats(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n\nsecond doc\nstill second\n")
    assert list(documents_in_file(tmp_path / "a.txt")) == ["first doc", "second doc", "still second"]
    assert list(documents_in_file(tmp_path / "a.txt", paragraphs=True)) == ["first doc", "second doc still second"]
    (tmp_path / "b.jsonl").write_text('{"body": "x y"}\n{"body": "z"}\n')
    assert list(documents_in_file(tmp_path / "b.jsonl", text_field="body")) == ["x y", "z"]
    (tmp_path / "c.txt").write_text("1|t|A title.\n1|a|An abstract.\n1\t0\t1\tA\tDisease\tD1\n\n2|t|Other.\n2|a|Text.\n")
    assert list(documents_in_file(tmp_path / "c.txt")) == ["A title. An abstract.", "Other. Text."]


@pytest.mark.real
def test_pubtator_abstracts_and_their_splits():
    folder = shared_data("ncbi_disease_abstracts")
    files = text_files(folder)
    assert files["train"][0].name == "NCBItrainset_corpus.txt"
    assert files["validation"][0].name == "NCBIdevelopset_corpus.txt"
    docs = list(documents(files["train"]))
    assert len(docs) == 593  # the NCBI-disease training abstracts
    assert all("|" not in d[:20] for d in docs)


def test_hold_out_every_kth():
    train, held = hold_out(iter(range(100)), 0.05)
    assert len(list(train)) == 95 and held == [19, 39, 59, 79, 99]


def test_blocks_pack_documents(tokenizer):
    builder = BlockBuilder(tokenizer, block_size=16, word_ids=True)
    blocks = list(build_blocks(SENTENCES, builder))
    assert all(len(b["input_ids"]) <= 16 for b in blocks)
    assert all(b["input_ids"][0] == tokenizer.cls_token_id and b["input_ids"][-1] == tokenizer.sep_token_id for b in blocks)
    stream = [i for s in SENTENCES for i in tokenizer(s, add_special_tokens=False)["input_ids"]]
    packed = [i for b in blocks for i in b["input_ids"][1:-1]]
    # every token once, in order, with a [SEP] between documents (none at the start of a block);
    # a tail shorter than a quarter block is dropped
    assert packed.count(tokenizer.sep_token_id) <= len(SENTENCES) - 1
    content = [i for i in packed if i != tokenizer.sep_token_id]
    assert content == stream[: len(content)] and 0 <= len(stream) - len(content) < 14 // 4
    for b in blocks:
        assert len(b["word_ids"]) == len(b["input_ids"]) and b["word_ids"][0] == -1
    lines = list(build_blocks(SENTENCES, BlockBuilder(tokenizer, block_size=8, unit="documents")))
    assert len(lines) == len(SENTENCES)


def _random_blocks(tokenizer, n=400, length=62):
    g = torch.Generator().manual_seed(0)
    special = set(tokenizer.all_special_ids)
    normal = [i for i in range(len(tokenizer)) if i not in special]
    builder = BlockBuilder(tokenizer, block_size=length + 2)
    blocks = []
    for _ in range(n):
        ids = [normal[int(j)] for j in torch.randint(len(normal), (length,), generator=g)]
        blocks.append(builder._block(ids, list(range(length))))
    return blocks


def test_mlm_masking_statistics(tokenizer):
    objective = registry.get_objective("mlm")
    collator = objective.collator(tokenizer, objective.Options(), seed=0)
    blocks = _random_blocks(tokenizer)
    batch = collator([dict(b) for b in blocks])
    original = torch.tensor([b["input_ids"] for b in blocks])
    selected = batch["labels"] != -100
    assert not selected[:, 0].any() and not selected[:, -1].any()  # [CLS] and [SEP] never
    assert selected.float().mean().item() * 64 / 62 == pytest.approx(0.15, abs=0.01)
    masked = batch["input_ids"][selected] == tokenizer.mask_token_id
    kept = batch["input_ids"][selected] == original[selected]
    assert masked.float().mean().item() == pytest.approx(0.8, abs=0.02)
    assert kept.float().mean().item() == pytest.approx(0.1, abs=0.02)  # (+ random draws of the same id: 1/600)
    assert (~masked & ~kept).float().mean().item() == pytest.approx(0.1, abs=0.02)
    assert torch.equal(batch["labels"][selected], original[selected])


def test_whole_word_masking_keeps_words_together(tokenizer):
    objective = registry.get_objective("wwm")
    collator = objective.collator(tokenizer, objective.Options(), seed=0)
    docs = ["unbelievably transporting reimagining of overwhelmingly spotless hospitality"] * 300
    blocks = list(build_blocks(docs, BlockBuilder(tokenizer, block_size=32, word_ids=True)))
    batch = collator([dict(b) for b in blocks])
    multi = 0
    selected_words = total_words = 0
    for row, block in enumerate(blocks):
        by_word: dict[int, list[bool]] = {}
        for pos, w in enumerate(block["word_ids"]):
            if w >= 0:
                by_word.setdefault(w, []).append(bool(batch["labels"][row, pos] != -100))
            else:
                assert batch["labels"][row, pos] == -100
        for flags in by_word.values():
            assert all(flags) or not any(flags)  # a word is masked whole or not at all
            multi += len(flags) > 1
            selected_words += flags[0]
            total_words += 1
    assert multi > 100  # the test really has multi-token words
    assert selected_words / total_words == pytest.approx(0.15, abs=0.02)


def test_perplexity_is_token_weighted():
    vocab = 10

    class Fixed(torch.nn.Module):
        """p(label 0) = 0.5 at input id 1, 0.25 at input id 2, uniform elsewhere."""

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            table = torch.full((vocab, vocab), 0.0)
            for token, p in ((1, 0.5), (2, 0.25)):
                table[token] = math.log((1 - p) / (vocab - 1))
                table[token, 0] = math.log(p)
            self.table = table

        def forward(self, input_ids, **kwargs):
            return type("Out", (), {"logits": self.table[input_ids]})()

    features = [{"input_ids": [1, 3], "labels": [0, -100]}, {"input_ids": [2, 2, 2], "labels": [0, 0, 0]}]

    def pad(chunk):
        width = max(len(f["input_ids"]) for f in chunk)
        return {"input_ids": torch.tensor([f["input_ids"] + [3] * (width - len(f["input_ids"])) for f in chunk]),
                "labels": torch.tensor([f["labels"] + [-100] * (width - len(f["labels"])) for f in chunk])}

    expected = math.exp((math.log(2) + 3 * math.log(4)) / 4)
    for batch_size in (1, 2):  # the same whatever the batching
        value, count = perplexity(Fixed(), features, pad, batch_size)
        assert count == 4 and value == pytest.approx(expected)
    uniform = [{"input_ids": [5, 5], "labels": [1, 2]}]
    assert perplexity(Fixed(), uniform, pad)[0] == pytest.approx(vocab)


def test_pretrain_then_adapt_chain(tiny_model, corpus, tmp_path, cli_runner):
    out = tmp_path / "dapt"
    result = cli_runner.invoke(cli, [
        "pretrain", "--objective", "mlm", "--model", str(tiny_model), "--data", str(corpus), "--output", str(out),
        "--max-steps", "12", "--block-size", "32", "--batch-size", "8", "--lr", "1e-3", "--quiet", "--json",
        "training.head_warmup_steps=3",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["fresh_head_weights"]  # the tiny model was saved without an MLM head
    assert metrics["primary_metric"] == "perplexity" and metrics["greater_is_better"] is False
    assert metrics["heldout_after"]["perplexity"] < metrics["heldout_before"]["perplexity"]
    assert metrics["heldout_before"]["masked_tokens"] > 0
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    adapted = cli_runner.invoke(cli, [
        "adapt", "--method", "lora", "--task", "ner", "--model", str(out), "--output", str(tmp_path / "ner"),
        "--epochs", "1", "--quiet", "--json",
    ])
    assert adapted.exit_code == 0, adapted.output
    assert "f1" in json.loads(adapted.stdout)["dev"]


def test_pretrain_with_lora_merges(tiny_model, corpus, tmp_path, cli_runner):
    out = tmp_path / "dapt-lora"
    result = cli_runner.invoke(cli, [
        "pretrain", "--method", "lora", "--model", str(tiny_model), "--data", str(corpus), "--output", str(out),
        "--max-steps", "4", "--block-size", "32", "--quiet", "--json", "--objective", "wwm",
    ])
    assert result.exit_code == 0, result.output
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(out)  # a plain model: LoRA was merged
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_pretrain_recipe_errors(tmp_path):
    with pytest.raises(RecipeError) as info:
        recipes.validate({"objective": {"name": "mlmm"}, "method": {"name": "prefix"},
                          "data": {"streaming": True}})
    text = str(info.value)
    assert "Did you mean 'mlm'?" in text
    assert "'prefix' cannot be merged" in text
    assert "data.path: required" in text


def test_objectives_in_plugins_report():
    report = registry.plugins_report()
    row = next(r for r in report["plugins"] if r["name"] == "mlm")
    assert row["registered"] == {"objectives": ["mlm", "wwm"]}


def test_streaming_pretrain(tiny_model, corpus, tmp_path, cli_runner):
    result = cli_runner.invoke(cli, [
        "pretrain", "--objective", "mlm", "--model", str(tiny_model), "--data", str(corpus), "--output", str(tmp_path / "s"),
        "--streaming", "--max-steps", "6", "--block-size", "32", "--batch-size", "4", "--quiet", "--json",
        "training.early_stopping_patience=null",  # 6 evaluations in 6 steps: early stopping would cut the run short
    ])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["train_steps"] == 6
    no_steps = cli_runner.invoke(cli, ["pretrain", "--objective", "mlm", "--data", str(corpus), "--streaming", "--output", str(tmp_path / "t")])
    assert no_steps.exit_code == 1 and "training.max_steps: required with data.streaming" in no_steps.output


def test_stage_recipe_runs_both_stages(tiny_model, corpus, tmp_path, cli_runner, monkeypatch):
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(f"""
stages:
  pre:
    objective: {{name: wwm}}
    model: {{name: {tiny_model}}}
    data: {{path: {corpus.name}, block_size: 32}}
    training: {{max_steps: 3, head_warmup_steps: 1}}
    output: {{dir: out/pre}}
  ner:
    task: {{name: ner}}
    method: {{name: ia3}}
    model: {{name: "stage:pre"}}
    training: {{epochs: 1}}
    output: {{dir: out/ner}}
""")
    monkeypatch.chdir(tmp_path)
    result = cli_runner.invoke(cli, ["run", str(recipe), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out/ner/run.json").read_text())
    assert info["base_model"] == str((tmp_path / "out/pre").resolve())


def test_fresh_head_trains_at_its_own_rate(tiny_model, tmp_path):
    """Trainer's optimizer puts the named weights in groups at their own peak rate, weight decay kept;
    the schedule scales every group alike."""
    from transformers import AutoModelForMaskedLM

    from peft_hub.train import FeatureDataset, build_trainer

    model = AutoModelForMaskedLM.from_pretrained(tiny_model)
    head = {"cls.predictions.transform.dense.weight": 1e-2, "cls.predictions.transform.dense.bias": 1e-2}
    train = FeatureDataset([{"input_ids": [1, 2, 3], "labels": [-100, 2, -100]}] * 8)
    trainer = build_trainer(recipes.PretrainTrainingConfig(warmup_ratio=0.0), 1e-3, model, None, train, None,
                            tmp_path, collator=None, quiet=True, learning_rates=head)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    trainer.optimizer.step()  # no gradients yet: moves nothing
    trainer.lr_scheduler.step()  # one step of linear decay: every rate x 0.9
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {names[id(p)]: (group["lr"], group["weight_decay"])
            for group in trainer.optimizer.param_groups for p in group["params"]}
    assert len(seen) == sum(1 for p in model.parameters() if p.requires_grad)
    assert seen["cls.predictions.transform.dense.weight"] == (pytest.approx(9e-3), 0.01)
    assert seen["cls.predictions.transform.dense.bias"] == (pytest.approx(9e-3), 0.0)
    assert seen["bert.encoder.layer.0.attention.self.query.weight"] == (pytest.approx(9e-4), 0.01)


@pytest.mark.parametrize("warmup, encoder_moves", [(3, False), (1, True)])
def test_only_the_fresh_head_moves_while_it_warms_up(tiny_model, corpus, tmp_path, cli_runner, warmup, encoder_moves):
    from safetensors.torch import load_file

    out = tmp_path / "warm"
    result = cli_runner.invoke(cli, [
        "pretrain", "--objective", "mlm", "--model", str(tiny_model), "--data", str(corpus), "--output", str(out), "--max-steps", "3",
        "--block-size", "32", "--lr", "1e-2", "--quiet", f"training.head_warmup_steps={warmup}",
    ])
    assert result.exit_code == 0, result.output
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    encoder = [n for n in before if n.startswith("encoder.")]
    assert encoder and all(torch.equal(before[n], after[f"bert.{n}"]) for n in encoder) is not encoder_moves


def test_head_names_are_found_inside_peft_copies():
    """LoRA pretraining trains the head as peft's modules_to_save copy; warm-up and rates still find it."""
    from peft_hub.train import plain_name

    assert plain_name("base_model.model.cls.predictions.transform.modules_to_save.default.dense.weight") \
        == "base_model.model.cls.predictions.transform.dense.weight"
    assert plain_name("bert.encoder.layer.0.output.dense.weight") == "bert.encoder.layer.0.output.dense.weight"
