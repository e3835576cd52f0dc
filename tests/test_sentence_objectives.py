"""Sentence-level objectives (simcse, sop, nsp), sentence embeddings (`embed`, `evaluate --sts`)
on the tiny model: what they train on, that they learn, and what they refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import SAMPLES
from peft_hub import read_scored_pairs, registry, split_sentences
from peft_hub.cli import cli
from peft_hub.embeddings import alignment_uniformity, bi_encoder_class, contrastive_loss, pool

PAIRS = [line.split("\t") for name in ("train", "dev", "test")
         for line in (SAMPLES / "pair" / f"{name}.tsv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """Documents of four sentences per line, an STS file and an NLI file, from the pair samples."""
    folder = tmp_path_factory.mktemp("sentences")
    sentences = list(dict.fromkeys(s for row in PAIRS for s in row[1:3]))
    (folder / "docs.txt").write_text("\n".join(" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)) + "\n")
    (folder / "sts.tsv").write_text("".join(f"{a}\t{b}\t{5.0 if y == 'entailment' else 1.0}\n" for _, a, b, y in PAIRS))
    (folder / "nli.tsv").write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{a}\t{b}\t{'entailment' if y == 'entailment' else 'contradiction'}\n" for _, a, b, y in PAIRS))
    return folder


def _pretrain(cli_runner, model, out, *args):
    result = cli_runner.invoke(cli, ["pretrain", "--model", str(model), "--output", str(out), "--quiet", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sentences_split_at_ends_and_drop_headings():
    assert split_sentences("He was cast in 2005 . He starred in \" Teddy \" .") == [  # WikiText's spacing
        "He was cast in 2005 .", "He starred in \" Teddy \" ."]
    assert split_sentences(" = = Career = = ") == []  # a heading line
    assert split_sentences("Dr. smith came home. It rained! Did it? 3 cats were here.") == [
        "Dr. smith came home.", "3 cats were here."]  # "It rained!" and "Did it?" have 2 words: dropped


def test_contrastive_loss_is_cross_entropy_over_cosine_similarities():
    torch.manual_seed(0)
    anchors, candidates = torch.randn(4, 8), torch.randn(6, 8)  # 4 positives, then 2 hard negatives
    a, c = torch.nn.functional.normalize(anchors, dim=-1), torch.nn.functional.normalize(candidates, dim=-1)
    expected = torch.nn.functional.cross_entropy(a @ c.T / 0.05, torch.arange(4))
    assert contrastive_loss(anchors, candidates, 0.05).item() == pytest.approx(expected.item(), rel=1e-5)
    assert contrastive_loss(anchors, anchors * 3, 0.05).item() < 0.01  # each anchor is its own positive


def test_same_group_positives_are_no_negatives():
    torch.manual_seed(0)
    anchors, candidates = torch.randn(4, 8), torch.randn(4, 8)
    groups = torch.tensor([0, 0, 1, 1])
    a, c = torch.nn.functional.normalize(anchors, dim=-1), torch.nn.functional.normalize(candidates, dim=-1)
    logits = a @ c.T / 0.1
    first = -torch.log_softmax(logits[0, [0, 2, 3]], 0)[0]  # anchor 0 against its positive and group 1 only
    second = -torch.log_softmax(logits[1, [1, 2, 3]], 0)[0]
    third = -torch.log_softmax(logits[2, [0, 1, 2]], 0)[2]
    fourth = -torch.log_softmax(logits[3, [0, 1, 3]], 0)[2]
    expected = (first + second + third + fourth) / 4
    assert contrastive_loss(anchors, candidates, 0.1, groups).item() == pytest.approx(expected.item(), rel=1e-5)


def test_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert pool(hidden, torch.tensor([[1, 1, 0]]), "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, torch.tensor([[1, 1, 0]]), "cls").tolist() == [[1.0, 1.0]]


def test_uniformity_prefers_spread_embeddings():
    rng = np.random.default_rng(0)
    spread, clumped = rng.normal(size=(50, 16)), rng.normal(size=(50, 16)) * 0.05 + 1
    assert alignment_uniformity(spread)["uniformity"] < alignment_uniformity(clumped)["uniformity"]
    assert alignment_uniformity(spread, spread)["alignment"] == pytest.approx(0.0, abs=1e-6)


def test_bi_encoder_is_the_encoder_without_temperature(tiny_model):
    from transformers import AutoModel

    base = type(AutoModel.from_pretrained(tiny_model))
    model = bi_encoder_class(base).from_pretrained(tiny_model).eval()
    assert type(model).__name__ == base.__name__  # save_pretrained writes a plain encoder
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3], [2, 12, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    plain = AutoModel.from_pretrained(tiny_model).eval()(**batch).last_hidden_state
    assert torch.allclose(model(**batch).last_hidden_state, plain)
    model.train()
    assert model(**batch, temperature=0.05, return_loss=True)["loss"].item() > 0  # two dropout views differ


@pytest.mark.parametrize("method", ["full", "lora", "ia3", "freeze"])  # adapter: refused by pretrain (cannot merge)
def test_simcse_trains_with_every_method_and_its_output_adapts(method, tiny_model, texts, tmp_path, cli_runner):
    out = tmp_path / "simcse"
    metrics = _pretrain(cli_runner, tiny_model, out, "--objective", "simcse", "--method", method, "--data", str(texts / "docs.txt"),
                        "--max-steps", "6", "--batch-size", "16", f"objective.options.sts={texts / 'sts.tsv'}")
    assert metrics["primary_metric"] == "spearman" and metrics["greater_is_better"] is True
    assert set(metrics["heldout_after"]) >= {"spearman", "pearson", "uniformity"}
    assert metrics["heldout_after"]["sts_pairs"] == len(PAIRS)
    assert json.loads((out / "run.json").read_text())["pooling"] == "mean"  # what embed and evaluate --sts use
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert any("eval_spearman" in entry for entry in history)  # evaluated during training: the best is kept
    adapted = cli_runner.invoke(cli, ["adapt", "--task", "classify", "--method", "lora", "--model", str(out),
                                      "--output", str(tmp_path / "classify"), "--max-steps", "2", "--quiet", "--json"])
    assert adapted.exit_code == 0, adapted.output


def test_unsupervised_simcse_learns_on_the_tiny_model(tiny_model, texts, tmp_path, cli_runner):
    metrics = _pretrain(cli_runner, tiny_model, tmp_path / "out", "--objective", "simcse", "--data", str(texts / "docs.txt"),
                        "--max-steps", "30", "--batch-size", "32", "--lr", "1e-3", "training.early_stopping_patience=null")
    assert metrics["primary_metric"] == "uniformity" and metrics["greater_is_better"] is False  # no STS file given
    assert metrics["heldout_after"]["uniformity"] < metrics["heldout_before"]["uniformity"]


def test_supervised_simcse_reads_nli_pairs_with_hard_negatives(tiny_model, texts, tmp_path, cli_runner):
    metrics = _pretrain(cli_runner, tiny_model, tmp_path / "out", "--objective", "simcse", "--data", str(texts / "nli.tsv"),
                        "--max-steps", "8", "--batch-size", "16", "--lr", "1e-3", "objective.options.pairs=nli")
    assert "alignment" in metrics["heldout_after"]  # held-out entailment pairs
    simcse = registry.objectives()["simcse"].obj
    examples = simcse._triplets([type("P", (), {"text": "a", "text_pair": b, "label": y})() for b, y in
                                 (("b", "entailment"), ("c", "contradiction"), ("d", "neutral"))], type("O", (), {"hard_negatives": True}))
    assert examples == [{"anchor": "a", "positive": "b", "negative": "c"}]


def test_simcse_from_labels_then_a_head_setfit_style(tiny_model, tmp_path, cli_runner):
    out = tmp_path / "contrast"
    metrics = _pretrain(cli_runner, tiny_model, out, "--objective", "simcse", "--data", str(SAMPLES / "classify"),
                        "--max-steps", "6", "--batch-size", "8", "objective.options.pairs=labels",
                        "objective.options.positives_per_example=3", "objective.options.pooling=cls")
    assert "alignment" in metrics["heldout_after"]  # held-out same-label pairs from the dev file
    simcse = registry.objectives()["simcse"].obj
    options = simcse.Options(pairs="labels", positives_per_example=2)

    class Data:  # the pretrain data section
        paths, validation, encoding = [str(SAMPLES / "classify")], None, "utf-8"

    from peft_hub.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    train, held = simcse.read_data(Data, tokenizer, options)
    rows = [line.split("\t") for line in (SAMPLES / "classify" / "train.tsv").read_text().splitlines()[1:]]
    label_of = {tuple(tokenizer(text, truncation=True, max_length=64)["input_ids"]): label for text, label in rows}
    assert len(train) == 2 * len(rows) and {p["group"] for p in train} == {0, 1}
    assert all(label_of[tuple(p["input_ids"])] == label_of[tuple(p["positive_ids"])] for p in train)  # same-label pairs
    head = cli_runner.invoke(cli, ["adapt", "--task", "classify", "--method", "freeze[top_layers=0]", "--model", str(out),
                                   "--output", str(tmp_path / "head"), "--epochs", "2", "--quiet", "--json"])
    assert head.exit_code == 0, head.output


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_sentence_pairs_come_from_consecutive_sentences(objective, tokenizer, texts):
    from peft_hub.text import BlockBuilder, build_blocks, documents

    units = list(build_blocks(documents([texts / "docs.txt"]), BlockBuilder(tokenizer, 128, unit="sentences")))
    assert {"text", "document"} <= set(units[0]) and units[0]["document"] == 0
    plugin = registry.objectives()[objective].obj
    examples = plugin.build_examples(units, tokenizer, plugin.Options(short_segment_prob=0), seed=1, block_size=128)
    assert plugin.build_examples(units, tokenizer, plugin.Options(short_segment_prob=0), seed=1, block_size=128) == examples  # seeded
    labels = [e["sentence_label"] for e in examples]
    assert 0.25 < sum(labels) / len(labels) < 0.75 and "labels" not in examples[0]

    def squeeze(text):
        return "".join(text.lower().split())

    docs: dict[int, str] = {}
    for unit in units:
        docs[unit["document"]] = docs.get(unit["document"], "") + squeeze(unit["text"])
    for example in examples:
        a, b = (squeeze(tokenizer.decode([i for i, t in zip(example["input_ids"], example["token_type_ids"]) if t == part],
                                         skip_special_tokens=True)) for part in (0, 1))
        in_a_document = lambda text: any(text in doc for doc in docs.values())  # noqa: E731
        if example["sentence_label"] == 0:  # a then b, as written
            assert in_a_document(a + b)
        elif objective == "sop":  # swapped: b came first
            assert in_a_document(b + a) and not in_a_document(a + b)
        else:  # b is from another document
            assert in_a_document(a) and in_a_document(b) and not in_a_document(a + b)


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_sentence_objectives_train_and_report_accuracy(objective, tiny_model, texts, tmp_path, cli_runner):
    out = tmp_path / objective
    metrics = _pretrain(cli_runner, tiny_model, out, "--objective", objective, "--method", "lora", "--data", str(texts / "docs.txt"),
                        "--max-steps", "6", "--batch-size", "8", "--validation-split", "0.2")
    assert metrics["primary_metric"] == "accuracy" and 0 <= metrics["heldout_after"]["accuracy"] <= 1
    assert metrics["fresh_head_weights"]  # a fresh 2-way head
    info = json.loads((out / "run.json").read_text())
    assert info["objective"] == objective
    report = cli_runner.invoke(cli, ["report", str(out), "--json", "--png", str(tmp_path / "r.png")])
    assert report.exit_code == 0 and "accuracy" in report.output


def test_embed_writes_npy_and_jsonl_and_evaluates_sts(tiny_model, texts, tmp_path, cli_runner):
    lines = tmp_path / "in.txt"
    lines.write_text("A man plays a guitar.\nA dog runs in the park.\n")
    for name in ("v.npy", "v.jsonl"):
        result = cli_runner.invoke(cli, ["embed", str(tiny_model), "--input", str(lines), "--output", str(tmp_path / name), "--quiet"])
        assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (2, 32)
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert rows[1]["text"] == "A dog runs in the park." and np.allclose(rows[1]["embedding"], vectors[1], atol=1e-5)
    scored = cli_runner.invoke(cli, ["evaluate", str(tiny_model), "--sts", str(texts / "sts.tsv"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert -1 <= json.loads(scored.stdout)["sts"]["spearman"] <= 1


def test_embed_takes_a_classify_run_and_refuses_a_tagger(tiny_model, tmp_path, cli_runner):
    lines = tmp_path / "in.txt"
    lines.write_text("great food\n")
    for task in ("classify", "ner"):
        result = cli_runner.invoke(cli, ["adapt", "--task", task, "--method", "lora", "--model", str(tiny_model),
                                         "--output", str(tmp_path / task), "--max-steps", "1", "--quiet"])
        assert result.exit_code == 0, result.output
    assert cli_runner.invoke(cli, ["embed", str(tmp_path / "classify"), "-i", str(lines), "-o", str(tmp_path / "c.npy")]).exit_code == 0
    refused = cli_runner.invoke(cli, ["embed", str(tmp_path / "ner"), "-i", str(lines), "-o", str(tmp_path / "n.npy")])
    assert refused.exit_code != 0 and "no sentence representation" in refused.output and "classify" in refused.output


def test_read_scored_pairs_refuses_scores_out_of_range(tmp_path):
    path = tmp_path / "sts.tsv"
    path.write_text("a b c\td e f\t4.5\ng h i\tj k l\t7.0\nm n o\tp q r\t1.0\n")
    with pytest.raises(Exception, match=r"line 2: score 7.0 is outside \[0, 5\]"):
        read_scored_pairs(path)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_mlm_plus_sop_trains_one_encoder_with_both_losses(method, tiny_model, texts, tmp_path, cli_runner):
    out = tmp_path / "mlm+sop"
    metrics = _pretrain(cli_runner, tiny_model, out, "--objective", "mlm+sop", "--method", method, "--data", str(texts / "docs.txt"),
                        "--max-steps", "6", "--batch-size", "8", "--validation-split", "0.2", "training.head_warmup_steps=2",
                        "objective.options.weights={mlm: 1.0, sop: 0.5}", "objective.options.mlm.mlm_probability=0.2")
    assert metrics["primary_metric"] == "mlm_perplexity" and metrics["greater_is_better"] is False
    assert {"mlm_perplexity", "mlm_masked_tokens", "sop_accuracy"} <= set(metrics["heldout_after"])
    assert any(w.startswith("parts.mlm.cls") for w in metrics["fresh_head_weights"])
    assert any(w.startswith("parts.sop.classifier") for w in metrics["fresh_head_weights"])
    from transformers import AutoModelForMaskedLM

    saved = AutoModelForMaskedLM.from_pretrained(out)  # the first part's model, with the shared encoder
    assert saved.cls.predictions.decoder.weight.data_ptr() == saved.bert.embeddings.word_embeddings.weight.data_ptr()
    assert json.loads((out / "run.json").read_text())["objective"] == "mlm+sop"
    adapted = cli_runner.invoke(cli, ["adapt", "--task", "ner", "--method", "lora", "--model", str(out),
                                      "--output", str(tmp_path / "ner"), "--max-steps", "2", "--quiet"])
    assert adapted.exit_code == 0, adapted.output


def test_combined_objective_shares_the_encoder(tiny_model):
    objective = registry.get_objective("mlm+nsp")
    model, fresh = objective.build_model(str(tiny_model))
    mlm, nsp = model.parts["mlm"], model.parts["nsp"]
    assert mlm.bert is nsp.bert and mlm.bert.pooler is not None  # the larger encoder (with the pooler nsp reads)
    names = [name for name, _ in model.named_parameters()]
    assert not any(name.startswith("parts.nsp.bert.") for name in names)  # registered once, under the first part
    assert "parts.mlm.bert.pooler.dense.weight" in names and "parts.nsp.classifier.weight" in names
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight  # tied to the shared embeddings
    assert objective.head_modules(model) == ["parts.mlm.cls.predictions.transform", "parts.nsp.classifier"]
    with pytest.raises(Exception, match="both build their own examples"):
        registry.get_objective("sop+nsp")
    assert objective.shapes_examples() and not registry.get_objective("mlm+wwm").shapes_examples()  # only nsp builds examples
    with pytest.raises(Exception, match="wwm needs word ids"):
        registry.get_objective("wwm+sop")
