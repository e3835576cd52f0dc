"""Generation (summarize, translate): a warm-started encoder-decoder on the tiny BERT learns ten
pairs until its greedy output is the targets; a reloaded run and a merged model say the same; bad
parallel data is refused with the file and line."""

from __future__ import annotations

import gzip
import shutil

import pytest
from conftest import train_tiny

from peft_hub import adapt, finished, registry
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
