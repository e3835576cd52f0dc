"""Generation (summarize, translate): a warm-started encoder-decoder on the tiny BERT learns ten
pairs until its greedy output is the targets; a reloaded run and a merged model say the same; bad
parallel data is refused with the file and line."""

from __future__ import annotations

import gzip
import shutil

import pytest
from conftest import train_tiny

from peft_hub import adapt, finished, registry, set_target_tokenizer
from peft_hub.errors import DataError
from peft_hub.recipes import DataConfig


def _normalized(tokenizer, text):
    """A reference as the model can write it (the tiny tokenizer is uncased and joins 'park .')."""
    return tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True).strip()


def test_overfits_ten_pairs_then_reload_and_merge_say_the_same(tiny_model, tmp_path, hub_home, cli_runner):
    task = registry.get_task("translate")
    data = tmp_path / "data"
    data.mkdir()
    for lang in ("de", "en"):
        shutil.copy(task.sample_data() / f"train.{lang}", data / f"train.{lang}")
    examples = task.read_data(DataConfig(path=str(data)), task.Options())["train"]
    assert len(examples) == 10
    run = train_tiny(tiny_model, tmp_path / "run", "translate", "full", **{
        "data.path": str(data), "data.validation_split": 0, "training.epochs": 100, "training.learning_rate": 1e-2,
        "training.batch_size": 10, "training.seed": 1, "training.warmup_ratio": 0.0, "task.options.num_beams": 1})
    inputs = [{"text": e.source} for e in examples]
    wanted = [_normalized(run.tokenizer, e.targets[0]) for e in examples]
    assert [p["generated"] for p in run.predict(inputs)] == wanted

    assert [p["generated"] for p in finished.load_run(run.directory).predict(inputs)] == wanted
    merged = adapt.merge(run.directory, tmp_path / "merged")
    model = task.build_model(str(merged), [])  # a merged run is an encoder-decoder of its own
    assert task.head_modules(model) == []
    assert task.generate(model, run.tokenizer, [i["text"] for i in inputs], run.resolved.task_options) == wanted

    from peft_hub.cli import cli

    assert cli_runner.invoke(cli, ["hub", "add", str(run.directory), "--name", "de-en-tiny"]).exit_code == 0
    card = cli_runner.invoke(cli, ["hub", "show", "de-en-tiny"]).output
    assert "bleu" in card and "peft-hub merge de-en-tiny --output DIR" in card and "AutoModelForSeq2SeqLM.from_pretrained" in card


def _parallel(tmp_path, de: list[str], en: list[str], gz: bool = False):
    for lang, lines in (("de", de), ("en", en)):
        text = "".join(line + "\n" for line in lines).encode()
        path = tmp_path / f"train.{lang}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(text) if gz else text)
    return DataConfig(path=str(tmp_path))


@pytest.mark.parametrize(("de", "en", "message"), [
    (["ein hund", "eine katze"], ["a dog"], r"train\.de has 2 lines and .*train\.en 1: line i of one must translate"),
    (["ein hund", "eine katze"], ["a dog", ""], r"train\.en, line 2: empty, but its counterpart is not"),
    ([" ", "eine katze"], ["a dog", "a cat"], r"train\.de, line 1: empty, but its counterpart is not"),
])
def test_bad_parallel_data_is_refused_with_file_and_line(de, en, message, tmp_path):
    task = registry.get_task("translate")
    with pytest.raises(DataError, match=message):
        task.read_data(_parallel(tmp_path, de, en), task.Options())


def test_parallel_files_are_read_gzipped_by_their_language_suffix(tmp_path):
    task = registry.get_task("translate")
    splits = task.read_data(_parallel(tmp_path, ["ein hund", "eine katze"], ["a dog", "a cat"], gz=True), task.Options())
    assert [(e.source, e.targets) for e in splits["train"]] == [("ein hund", ["a dog"]), ("eine katze", ["a cat"])]
    english_to_german = task.read_data(DataConfig(path=str(tmp_path)), task.Options(source_lang="en", target_lang="de"))
    assert english_to_german["train"][0].source == "a dog"
    with pytest.raises(DataError, match=r"the train split has no 'fr' file beside train\.en\.gz"):
        task.read_data(DataConfig(path=str(tmp_path)), task.Options(source_lang="fr"))


def test_summaries_are_scored_against_every_reference(tokenizer):
    task = registry.get_task("summarize")
    one = task.score(["a small fast model"], [["a broken bed"]], tokenizer, task.Options())
    best = task.score(["a small fast model"], [["a broken bed", "a small fast model"]], tokenizer, task.Options())
    assert one["rouge1"] < 0.5 and best == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_a_source_longer_than_the_model_is_cut_and_counted(tokenizer, caplog):
    task = registry.get_task("summarize")
    example = task.read_data(DataConfig(path=str(task.sample_data())), task.Options())["train"][0]
    example.source = " ".join([example.source] * 50)
    with caplog.at_level("WARNING", logger="peft_hub.seq2seq"):
        features = task.encode([example], tokenizer, [], task.Options(max_source_length=32))
    assert len(features[0]["input_ids"]) == 32
    assert "1 of 1 source(s) cut to max_source_length=32" in caplog.text


def test_an_encoder_that_cannot_decode_is_refused_by_name(family_model):
    task = registry.get_task("summarize")
    with pytest.raises(Exception, match=r"distilbert model, which transformers cannot run as a decoder"):
        task.build_model(str(family_model("distilbert")), [])


def test_targets_the_tokenizer_cannot_write_are_refused(tokenizer, tmp_path):
    """English -> German with an uncased vocabulary that strips accents: 'Männer' could never be written."""
    task = registry.get_task("translate")
    examples = task.read_data(_parallel(tmp_path, ["men run", "women sing"], ["Männer laufen", "Frauen singen über"]),
                              task.Options())["train"]
    with pytest.raises(DataError, match=r"cannot write 2 of the first 2 targets .*'Männer laufen' comes back as 'manner laufen'"):
        task.encode(examples, tokenizer, [], task.Options())
    assert task.encode(examples[:0], tokenizer, [], task.Options()) == []


def test_english_to_german_writes_with_a_vocabulary_learned_from_the_targets(tiny_model, tmp_path, hub_home, cli_runner):
    """The tiny vocabulary is uncased and strips accents ('läuft' -> 'lauft'): with
    target_tokenizer=train the decoder writes with a byte-level BPE vocabulary learned from the
    German targets, saved with the run, and reload, merge and the hub card use it."""
    import peft_hub

    task = registry.get_task("translate")
    data = tmp_path / "data"
    data.mkdir()
    for lang in ("de", "en"):
        shutil.copy(task.sample_data() / f"train.{lang}", data / f"train.{lang}")
    options = {"data.path": str(data), "data.validation_split": 0, "task.options.source_lang": "en",
               "task.options.target_lang": "de", "task.options.num_beams": 1}
    with pytest.raises(DataError, match=r"target_tokenizer=train"):
        train_tiny(tiny_model, tmp_path / "refused", "translate", "full", **options)

    run = train_tiny(tiny_model, tmp_path / "run", "translate", "full", **options, **{
        "task.options.target_tokenizer": "train", "task.options.target_vocab_size": 512, "training.epochs": 100,
        "training.learning_rate": 1e-2, "training.batch_size": 10, "training.seed": 1, "training.warmup_ratio": 0.0})
    target = peft_hub.target_tokenizer(run.tokenizer)
    assert target is not run.tokenizer and len(target) <= 512
    heads = run.resolved.task.head_modules(run.model)  # the decoder's embeddings and output layer start fresh
    assert {"decoder.bert.embeddings.word_embeddings", "decoder.cls"} <= set(heads)
    examples = task.read_data(DataConfig(path=str(data)), run.resolved.task_options)["train"]
    inputs = [{"text": e.source} for e in examples]
    wanted = [_normalized(target, e.targets[0]) for e in examples]
    assert any("ä" in text for text in wanted)  # written with its accents
    assert [p["generated"] for p in run.predict(inputs)] == wanted

    assert (run.directory / "tokenizer" / "target" / "tokenizer.json").is_file()
    assert [p["generated"] for p in finished.load_run(run.directory).predict(inputs)] == wanted
    merged = adapt.merge(run.directory, tmp_path / "merged")
    tokenizer = peft_hub.load_tokenizer(str(merged))
    model = task.build_model(str(merged), [], tokenizer=tokenizer)
    assert task.generate(model, tokenizer, [i["text"] for i in inputs], run.resolved.task_options) == wanted

    from peft_hub.cli import cli

    assert cli_runner.invoke(cli, ["hub", "add", str(run.directory), "--name", "en-de-tiny"]).exit_code == 0
    assert 'AutoTokenizer.from_pretrained("DIR/target")' in cli_runner.invoke(cli, ["hub", "show", "en-de-tiny"]).output


def test_the_learned_target_vocabulary_is_the_same_on_every_run():
    """Every process of a multi-process run, and a resumed run, learns the vocabulary again: it must
    come out the same (tokenizers' WordPiece trainer breaks ties between equal counts differently
    each time; byte-level BPE does not)."""
    from peft_hub_plugins import seq2seq

    task = registry.get_task("translate")
    texts = [e.targets[0] for e in task.read_data(DataConfig(path=str(task.sample_data())), task.Options(target_lang="de",
                                                                                                        source_lang="en"))["train"]]
    first, second = (seq2seq.learn_tokenizer(texts * 3, 600) for _ in range(2))
    assert first.get_vocab() == second.get_vocab() and len(first) > 256
    assert first.decode(first("Männer überqueren die Straße.")["input_ids"], skip_special_tokens=True) == \
        "Männer überqueren die Straße."


def test_a_shared_decoder_is_one_copy_of_the_encoder_and_merges_each_halfs_update(tiny_model, tmp_path):
    """decoder=shared: the decoder's self-attention, feed-forward and embeddings are the encoder's
    parameters; LoRA trains an update per half, and merging folds each into its own copy (folded
    into the one shared weight, both halves would get both updates)."""
    import torch

    task = registry.get_task("translate")
    shared = task.build_model(str(tiny_model), [], task.Options(decoder="shared", decoder_layers=1))
    warm = task.build_model(str(tiny_model), [], task.Options(decoder_layers=1))
    assert len(shared.decoder.bert.encoder.layer) == 1
    query = shared.decoder.bert.encoder.layer[0].attention.self.query
    assert query.weight is shared.encoder.encoder.layer[0].attention.self.query.weight
    assert shared.decoder.cls.predictions.decoder.weight is shared.encoder.embeddings.word_embeddings.weight
    assert sum(p.numel() for p in shared.parameters()) < sum(p.numel() for p in warm.parameters())
    with pytest.raises(Exception, match=r"decoder_layers=3, but .* has 2 layers"):
        task.build_model(str(tiny_model), [], task.Options(decoder_layers=3))
    with pytest.raises(Exception, match=r"decoder=shared .* which an 8-bit/4-bit base cannot share"):
        task.build_model(str(tiny_model), [], task.Options(decoder="shared"), quantization_config=object())

    run = train_tiny(tiny_model, tmp_path / "run", "translate", "lora", **{
        "task.options.decoder": "shared", "task.options.decoder_layers": 1, "training.learning_rate": 1e-2,
        "training.epochs": 3, "task.options.num_beams": 1})
    batch = task.collator(run.tokenizer)(task.encode(
        task.read_data(DataConfig(path=str(task.sample_data())), task.Options())["train"][:4], run.tokenizer, [], task.Options()))
    merged = adapt.merge(run.directory, tmp_path / "merged")
    model = task.build_model(str(merged), [])
    with torch.no_grad():
        trained, folded = run.model(**batch).logits, model.eval()(**batch).logits
        untrained = shared.eval()(**batch).logits
    assert (trained - untrained).abs().max() > 1e-2  # the adapter changed the outputs ...
    torch.testing.assert_close(folded, trained, atol=1e-4, rtol=1e-4)  # ... and merged, it still does the same


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_a_sequence_to_sequence_base_is_used_as_it_is(family, tmp_path):
    """A BART or T5 base (built tiny here, with a byte-level BPE tokenizer) is not warm-started:
    it trains as it is (no fresh head), and reload and merge generate what the run does."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    from peft_hub_plugins.seq2seq import learn_tokenizer

    task = registry.get_task("translate")
    splits = task.read_data(DataConfig(path=str(task.sample_data())), task.Options())
    tokenizer = learn_tokenizer([t for split in splits.values() for e in split for t in (e.source, *e.targets)], 600)
    base = tmp_path / family
    tokenizer.save_pretrained(base)
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(0)
    if family == "bart":
        BartForConditionalGeneration(BartConfig(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id, **ids)).save_pretrained(base)
    else:
        T5ForConditionalGeneration(T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                            decoder_start_token_id=tokenizer.pad_token_id, **ids)).save_pretrained(base)
    data = tmp_path / "data"  # no dev split: a tiny model's dev BLEU stays 0, and the best (first) step would be kept
    data.mkdir()
    for lang in ("de", "en"):
        shutil.copy(task.sample_data() / f"train.{lang}", data / f"train.{lang}")
    run = train_tiny(base, tmp_path / "run", "translate", "lora", **{
        "data.path": str(data), "data.validation_split": 0, "training.epochs": 10, "training.learning_rate": 1e-2,
        "task.options.num_beams": 1, "task.options.max_new_tokens": 12})
    assert task.head_modules(run.model) == []
    batch = task.collator(run.tokenizer)(task.encode(splits["train"], run.tokenizer, [], task.Options()))
    with torch.no_grad():
        before, after = (model.eval()(**batch).loss for model in (task.build_model(str(base), []), run.model))
    assert after < before - 0.1  # it learned (the loss of an untrained adapter is the base's, to the digit)
    inputs = [{"text": e.source} for e in splits["test"]]
    generated = [p["generated"] for p in run.predict(inputs)]
    assert [p["generated"] for p in finished.load_run(run.directory).predict(inputs)] == generated
    merged = adapt.merge(run.directory, tmp_path / "merged")
    assert task.generate(task.build_model(str(merged), []), run.tokenizer, [i["text"] for i in inputs],
                         run.resolved.task_options) == generated
    learned = learn_tokenizer(["ein anderes vokabular"] * 5, 600)
    set_target_tokenizer(run.tokenizer, learned)  # a vocabulary of its own, for a base that writes with its own
    with pytest.raises(Exception, match=r"an encoder-decoder that writes with a vocabulary of its own .* leave it unset"):
        task.build_model(str(base), [], tokenizer=run.tokenizer)
