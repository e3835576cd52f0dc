"""Bad input through the command line: every case gets a message that says what is wrong, where,
and what to do, a non-zero exit code and no traceback; nothing is left looking finished.

CASES is the catalogue. To see the message of every case:
    CATALOGUE=messages.jsonl .venv/bin/python -m pytest tests/test_bad_input.py
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from conftest import SAMPLES
from peft_hub.cli import cli

GOOD_NER = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n"


def _ner_dir(tmp: Path, train: str | bytes = GOOD_NER, dev: str | None = GOOD_NER, name: str = "train.txt") -> Path:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    if train is not None:
        (data / name).write_bytes(train if isinstance(train, bytes) else train.encode())
    if dev is not None:
        (data / "dev.txt").write_text(dev)
    return data


def _adapt(tmp: Path, tiny: Path, *extra: str, task: str = "ner", method: str = "lora") -> list[str]:
    return ["adapt", "--method", method, "--task", task, "--model", str(tiny), "--output", str(tmp / "out"), "--quiet", *extra]


def _pretrain(tmp: Path, tiny: Path, objective: str, data: str, *extra: str) -> list[str]:
    return ["pretrain", "--objective", objective, "--model", str(tiny), "--data", data, "--output", str(tmp / "out"),
            "--max-steps", "2", "--quiet", *extra]


def _sentences(tmp: Path) -> str:
    return _file(tmp, "docs.txt", "".join(f"The cat number {i} sat on the mat. It was a good cat indeed.\n" for i in range(40)))


def _file(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def _finished_run(tmp: Path, **info) -> str:
    run = tmp / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"complete": True, **info}))
    return str(run)


def _model_without_tokenizer(tmp: Path, tiny: Path) -> str:
    """The tiny model's weights and config, its tokenizer files left behind."""
    import shutil

    path = tmp / "no-tokenizer"
    path.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, path / name)
    return str(path)


def _mismatched_model(tmp: Path, tiny: Path) -> str:
    """The tiny model's tokenizer (600 tokens) beside a model with 100 embeddings."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp / "mismatch"
    BertTokenizerFast.from_pretrained(str(tiny)).save_pretrained(path)
    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(path)
    return str(path)


def _no_bitsandbytes(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))


def _permission_denied(monkeypatch) -> None:
    """Tests may run as root, which chmod does not stop: refuse the output directory as a
    read-only parent would."""
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "out":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def _disk_full_at_checkpoint(monkeypatch) -> None:
    """The disk fills up while the first checkpoint is written."""
    from transformers import Trainer

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(self.args.output_dir) / "checkpoint-2"))

    monkeypatch.setattr(Trainer, "_save_checkpoint", full)


# (id, argv from (tmp_path, tiny_model), expected message, optional monkeypatch setup)
CASES = [
    # -- data files ------------------------------------------------------------------------------
    ("conll-inconsistent-columns", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, "EU NNP B-NP B-ORG\n\nPeter NNP B-PER\n"))),
     "train.txt, line 3: 3 columns, but line 1 has 4", None),
    ("conll-one-column", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, "EU B-ORG\nrejects\n"))),
     "line 2: expected at least 2 columns", None),
    ("tag-not-iob-or-bioes", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, "EU PERSON\n"))),
     "line 1: tag 'PERSON' is not an entity tag", None),
    ("empty-split-file", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, dev=""))),
     "the validation split holds no sentences", None),
    ("missing-train-split", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, train=None))),
     "no training file found", None),
    ("non-utf8-bytes", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, b"EU B-ORG\n\nM\xfcller B-PER\n"))),
     "line 3: not valid UTF-8 (byte 0xfc)", None),
    ("jsonl-broken-line", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [\n', dev=None, name="train.jsonl"))),
     "train.jsonl, line 2", None),
    ("jsonl-tokens-tags-differ", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, '{"tokens": ["a", "b"], "tags": ["O"]}\n', dev=None, name="train.jsonl"))),
     "line 1: 2 tokens but 1 tags", None),
    ("classify-no-label-column", lambda t, m: _adapt(t, m, "--data", _file(t, "reviews.csv", "sentence,score\ngood,1\n"), task="classify"),
     "cannot tell which column holds the label", None),
    ("classify-one-class-only", lambda t, m: _adapt(t, m, "--data", _file(t, "train.tsv", "good film\tpos\nfine film\tpos\nnice\tpos\n"), task="classify"),
     "The training data holds one label only (pos), in all 2 examples", None),  # 1 of the 3 held out as dev
    ("ner-no-entities-at-all", lambda t, m: _adapt(t, m, "--data", str(_ner_dir(t, "EU O\nrejects O\n\nPeter O\n"))),
     "holds one label only (O)", None),
    ("classify-all-texts-empty", lambda t, m: _adapt(t, m, "--data", _file(t, "train.jsonl", '{"text": "", "label": "a"}\n{"text": " ", "label": "b"}\n' * 3), "data.validation_split=0", task="classify"),
     "All 6 training examples are empty after tokenization", None),
    ("tracker-unknown", lambda t, m: _adapt(t, m, "training.report_to=[tensorbord]"), "report_to: unknown tracker(s) ['tensorbord']", None),
    ("tracker-not-installed", lambda t, m: _adapt(t, m, "training.report_to=[neptune]"), "'neptune' needs the neptune package, which is not installed", None),
    ("classify-option-names-missing-column", lambda t, m: _adapt(t, m, "--data", _file(t, "train.tsv", "good film\tpos\nbad film\tneg\n"), "task.options.label_column=sentiment", task="classify"),
     "task option label_column='sentiment' names a column that is not in the header line", None),
    ("classify-tsv-extra-column", lambda t, m: _adapt(t, m, "--data", _file(t, "train.tsv", "good\tpos\nbad\tneg\textra\n"), task="classify"),
     "line 2: expected 2 tab-separated columns", None),
    ("data-path-missing", lambda t, m: _adapt(t, m, "--data", "./nowhere"), "does not exist", None),
    ("pretrain-empty-corpus", lambda t, m: ["pretrain", "--objective", "mlm", "--model", str(m), "--data", _file(t, "empty.txt", "\n\n"), "--output", str(t / "out"), "--quiet"],
     "every line is empty", None),
    ("block-size-over-model-positions", lambda t, m: ["pretrain", "--objective", "mlm", "--model", str(m), "--data", str(SAMPLES / "ner"), "--block-size", "1024", "--output", str(t / "out")],
     "data.block_size=1024 is more than the 128 positions", None),
    # -- names -----------------------------------------------------------------------------------
    ("unknown-method", lambda t, m: _adapt(t, m, method="lorra"), "Unknown method 'lorra'. Did you mean 'lora'?", None),
    ("unknown-task", lambda t, m: _adapt(t, m, task="nerr"), "Unknown task 'nerr'. Did you mean 'ner'?", None),
    ("unknown-objective", lambda t, m: ["pretrain", "--objective", "mlmm", "--data", str(SAMPLES)], "Did you mean 'mlm'?", None),
    ("unknown-recipe", lambda t, m: ["run", "no-such-recipe"], "Unknown recipe 'no-such-recipe'", None),
    # -- recipes and overrides -------------------------------------------------------------------
    ("recipe-unknown-key", lambda t, m: ["validate", _file(t, "r.yaml", "task: {name: ner}\nmethod: {name: lora}\ntrainin: {epochs: 1}\n")],
     "trainin: unknown key", None),
    ("recipe-wrong-type", lambda t, m: _adapt(t, m, "training.epochs=three"), "training.epochs: expected a number, got 'three'", None),
    ("recipe-bad-value", lambda t, m: _adapt(t, m, "--epochs", "0"), "epochs: must be more than 0, got 0.0", None),
    # numbers that pass a range check but are not finite or not sensible, refused before any training
    ("epochs-infinite", lambda t, m: ["validate", _file(t, "r.yaml", "task: {name: ner}\nmethod: {name: lora}\ntraining: {epochs: .inf}\n")],
     "training.epochs: must be a finite number, got inf", None),
    ("learning-rate-nan", lambda t, m: _adapt(t, m, "training.learning_rate=.nan"), "training.learning_rate: must be a finite number", None),
    ("method-option-infinite", lambda t, m: _adapt(t, m, "method.options.alpha=.inf"), "method.options.alpha: must be a finite number", None),
    ("seed-negative", lambda t, m: _adapt(t, m, "--seed", "-1"), "seed: must be at least 0, got -1", None),
    ("max-steps-zero", lambda t, m: _adapt(t, m, "--max-steps", "0"), "max_steps: must be at least 1, got 0", None),
    ("num-processes-zero", lambda t, m: _adapt(t, m, "--num-processes", "0"), "0 is not in the range x>=1", None),
    ("pretrain-eval-steps-zero", lambda t, m: ["validate", _file(t, "p.yaml", "objective: {name: mlm}\ndata: {path: README.md}\ntraining: {eval_steps: 0}\n")],
     "eval_steps: must be at least 1, got 0", None),
    ("override-missing-key", lambda t, m: _adapt(t, m, "training.epoch=3"), "training.epoch: unknown key", None),
    ("override-delete-missing-key", lambda t, m: _adapt(t, m, "~training.nope"), "no key training.nope", None),
    ("override-not-key-value", lambda t, m: _adapt(t, m, "trainingepochs"), "must be KEY=VALUE", None),
    ("method-option-unknown", lambda t, m: _adapt(t, m, "method.options.rank=4"), "method.options.rank: unknown key. Valid keys: target_modules, layers_to_transform, r, alpha", None),
    ("method-string-bad-option", lambda t, m: _adapt(t, m, method="lora[rank=4]"), "method.options.rank: unknown key", None),
    ("stage-model-is-a-string", lambda t, m: ["validate", _file(t, "st.yaml", "stages:\n  a:\n    task: {name: ner}\n    method: {name: lora}\n    model: minilm\n    training: {epochs: .inf}\n")],
     "stages.a.model: expected a mapping, got 'minilm'", None),
    ("yaml-syntax-error", lambda t, m: ["validate", _file(t, "bad.yaml", "task:\n  name: ner\n method: [\n")], "line 3", None),
    ("yaml-python-object", lambda t, m: ["validate", _file(t, "evil.yaml", "task: !!python/object/apply:os.system ['echo hacked']\n")],
     "invalid YAML", None),
    ("missing-method-or-task", lambda t, m: ["adapt", "--method", "lora"], "Name a --method and a --task", None),
    ("pretrain-without-objective", lambda t, m: ["pretrain", "--data", str(SAMPLES)], "Name an --objective", None),
    ("relation-text-without-markers", lambda t, m: _adapt(t, m, "--data", _file(t, "train.txt", '1\t"No markers here."\nOther\n\n'), task="relation"),
     "expected each of <e1> </e1> <e2> </e2> exactly once", None),
    ("qa-answer-not-in-context", lambda t, m: _adapt(t, m, "--data", _file(t, "train.jsonl", '{"question": "q", "context": "abc", "answers": [{"text": "z", "answer_start": 1}]}\n'), task="qa"),
     "answer 'z' is not at character 1 of the context", None),
    ("pair-scores-as-classes", lambda t, m: _adapt(t, m, "--data", _file(t, "train.tsv", "".join(f"a{i}\tb\t{i / 9:.3f}\n" for i in range(40))), task="pair"),
     "Set task.options.target=regression", None),
    # -- sentence objectives and embeddings ------------------------------------------------------
    ("simcse-pair-file-without-pairs", lambda t, m: _pretrain(t, m, "simcse", _file(t, "nli.tsv", "sentence1\tlabel\nA man sits.\tentailment\n"), "objective.options.pairs=nli"),
     "cannot tell which column holds the text_pair", None),
    ("simcse-unknown-nli-labels", lambda t, m: _pretrain(t, m, "simcse", _file(t, "nli.tsv", "sentence1\tsentence2\tlabel\n" + "A b c.\tD e f.\tpositive\n" * 4), "objective.options.pairs=nli"),
     "NLI label 'positive' is none of entailment, neutral, contradiction", None),
    ("simcse-no-entailment-pairs", lambda t, m: _pretrain(t, m, "simcse", _file(t, "nli.tsv", "sentence1\tsentence2\tlabel\n" + "".join(f"A b c{i}.\tD e f.\tneutral\n" for i in range(30))), "objective.options.pairs=nli"),
     "no entailment pairs to train on", None),
    ("simcse-sts-scores-out-of-range", lambda t, m: _pretrain(t, m, "simcse", _sentences(t), "objective.options.sts=" + _file(t, "sts.tsv", "a b c\td e f\t4.0\ng h i\tj k l\t6.5\nm n o\tp q r\t1.0\n")),
     "score 6.5 is outside [0, 5]", None),
    ("simcse-sts-file-missing", lambda t, m: _pretrain(t, m, "simcse", _sentences(t), "objective.options.sts=/no/sts.tsv"),
     "sts: /no/sts.tsv is not a file", None),
    ("simcse-batch-of-one", lambda t, m: _pretrain(t, m, "simcse", _sentences(t), "--batch-size", "1"),
     "needs at least 2 examples per batch (training.batch_size is 1)", None),
    ("sop-documents-of-one-sentence", lambda t, m: _pretrain(t, m, "sop", _file(t, "one.txt", "".join(f"The cat number {i} sat down.\n" for i in range(40)))),
     "sop needs documents of at least 2 sentences", None),
    ("embed-run-of-a-tagger", lambda t, m: ["embed", _finished_run(t, kind="adapt", task="ner"), "-i", _file(t, "in.txt", "x y\n"), "-o", str(t / "v.npy")],
     "that task has no sentence representation", None),
    ("embed-output-format", lambda t, m: ["embed", str(m), "-i", _file(t, "in.txt", "x y\n"), "-o", str(t / "v.csv")], "write .npy (a matrix) or .jsonl", None),
    ("embed-empty-line", lambda t, m: ["embed", str(m), "-i", _file(t, "in.txt", "x y\n\nz\n"), "-o", str(t / "v.npy")], "line 2: an empty text", None),
    ("evaluate-data-and-sts", lambda t, m: ["evaluate", str(m)], "Give --data (score a run with its task's metric) or --sts", None),
    # -- models ----------------------------------------------------------------------------------
    ("model-path-missing", lambda t, m: _adapt(t, "/no/such/model"), "does not exist", None),
    ("model-dir-not-a-model", lambda t, m: _adapt(t, t), "is not a model directory: it has no config.json", None),
    ("tokenizer-model-mismatch", lambda t, m: _adapt(t, _mismatched_model(t, m)), "do not belong together", None),
    ("model-dir-without-tokenizer", lambda t, m: _adapt(t, _model_without_tokenizer(t, m)), "it is not the model's tokenizer", None),
    ("quantize-without-bitsandbytes", lambda t, m: _adapt(t, m, "--quantize", "8bit"), "needs bitsandbytes, which is not installed", _no_bitsandbytes),
    ("fp16-without-gpu", lambda t, m: _adapt(t, m, "--precision", "fp16", "--max-steps", "1"), "needs a CUDA GPU", None),
    # -- output and run directories --------------------------------------------------------------
    ("output-holds-finished-run", lambda t, m: _adapt(t, m) if (t / "out").mkdir() or (t / "out" / "run.json").write_text("{}") else [],
     "already holds a finished run. Choose another --output, or pass --overwrite", None),
    ("resume-without-checkpoints", lambda t, m: _adapt(t, m, "--resume"), "Run without --resume", None),
    ("permission-denied-output", lambda t, m: _adapt(t, m), "Cannot write to the output directory", _permission_denied),
    ("disk-full-mid-run", lambda t, m: _adapt(t, m, "--max-steps", "2", "training.save_steps=2"), "No space left on device", _disk_full_at_checkpoint),
    ("predict-run-of-other-task", lambda t, m: ["predict", _finished_run(t, kind="adapt", task="classify"), "--task", "ner", "text"],
     "is a 'classify' run, not a 'ner' run", None),
    ("predict-pretrain-output", lambda t, m: ["predict", _finished_run(t, kind="pretrain", objective="mlm"), "text"],
     "is the output of `peft-hub pretrain`", None),
    ("predict-no-run", lambda t, m: ["predict", "/no/run/dir", "text"], "Pass the --output directory of a finished", None),
    ("recipes-cp-into-missing-folder", lambda t, m: ["recipes", "cp", "ner/minilm_lora", str(t / "no" / "such" / "r.yaml")],
     "No such file or directory", None),
    ("report-png-into-missing-folder", lambda t, m: ["report", str(t), "--png", str(t / "no" / "such" / "r.png")],
     "does not exist; create it or write the plot elsewhere", None),
    ("merge-output-is-a-file", lambda t, m: ["merge", str(t), "--output", _file(t, "model.bin", "x")], "is a file; merge writes a model directory", None),
    ("report-no-finished-run", lambda t, m: ["report", str(t)], "None of the given directories holds a finished run", None),
]


@pytest.mark.parametrize("case, argv, message, setup", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_message_not_a_traceback(case, argv, message, setup, tmp_path, tiny_model, cli_runner, monkeypatch):
    if setup:
        setup(monkeypatch)
    result = cli_runner.invoke(cli, argv(tmp_path, tiny_model))
    if os.environ.get("CATALOGUE"):
        with open(os.environ["CATALOGUE"], "a", encoding="utf-8") as out:
            out.write(json.dumps({"case": case, "exit": result.exit_code, "message": result.output.strip()}) + "\n")
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert message in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (AssertionError, TypeError, AttributeError))
    assert not (tmp_path / "out" / "run.json").exists() or case == "output-holds-finished-run"  # never looks finished


def test_the_catalogue_is_long_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_repaired_and_unusual_data_trains_with_warnings(tmp_path, tiny_model, cli_runner):
    """Not errors: an I- tag opening an entity is read as B- with a note; a 5,000-token sentence
    is split into windows, never truncated; a type seen only in dev is added with a warning."""
    long = "".join(f"w{i % 50} O\n" for i in range(5000))
    train = "EU B-ORG\nrejects O\n\nPeter I-PER\nBlackburn I-PER\nlives O\n\n" + long
    dev = "Paris B-LOC\nis O\n\nEU B-ORG\n"
    data = _ner_dir(tmp_path, train, dev)
    argv = [a for a in _adapt(tmp_path, tiny_model, "--data", str(data), "--max-steps", "2") if a != "--quiet"]
    result = cli_runner.invoke(cli, argv)
    assert result.exit_code == 0, result.output
    assert "1 I- tags that opened an entity were read as B-" in result.output
    assert "sentence(s) longer than max_length=128 split into windows" in result.output  # the tiny model has 128 positions
    assert "Entity types in dev/test but never in train (the model cannot learn them): LOC" in result.output
    assert "B-LOC" in json.loads((tmp_path / "out" / "labels.json").read_text())
    assert "Training: 2 steps" in result.output and "\r" not in result.output  # not a terminal: plain lines, no bars


def test_nothing_loads_or_runs_untrusted_code():
    """Recipes and checkpoints are data: no pickle, no unsafe YAML, no eval, torch.load only with
    weights_only=True, weights only as safetensors, trust_remote_code off by default."""
    import re

    from peft_hub import recipes

    root = Path(__file__).resolve().parent.parent
    for path in [*(root / "peft_hub").rglob("*.py"), *(root / "plugins").rglob("*.py")]:
        code = path.read_text(encoding="utf-8")
        assert not re.search(r"\bimport pickle|\bpickle\.|yaml\.load\(|yaml\.unsafe_load|(?<![.\w])eval\(|(?<![.\w])exec\(", code), path
        for call in re.findall(r"torch\.load\([^)]*\)", code):
            assert "weights_only=True" in call, (path, call)
    assert recipes.ModelConfig().trust_remote_code is False
    from peft_hub.models import load_pretrained

    captured = {}
    load_pretrained(type("Loader", (), {"from_pretrained": staticmethod(lambda path, **kw: captured.update(kw))}), "x")
    assert captured == {"use_safetensors": True, "trust_remote_code": False}


# -- data it should read: split files as published ------------------------------------------------


@pytest.mark.parametrize("names, expected", [
    (["wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated"], ["train", "validation", "test"]),  # WNUT-17
    (["eng.train", "eng.testa", "eng.testb"], ["train", "validation", "test"]),  # CoNLL-2003 as published
    (["ner.train.iob2", "ner.devel.iob2", "ner.test.iob2"], ["train", "validation", "test"]),
    (["NCBItrainset_corpus.txt", "NCBIdevelopset_corpus.txt", "NCBItestset_corpus.txt"], ["train", "validation", "test"]),
    (["train1.txt", "valid.txt", "contest.txt"], ["train", "validation", None]),  # 'contest' names no split
])
def test_published_split_names_are_recognised(tmp_path, names, expected):
    from peft_hub.data import find_split_files

    for name in names:
        (tmp_path / name).write_text(GOOD_NER)
    found = {path.name: split for split, path in find_split_files(tmp_path).items()}
    assert [found.get(name) for name in names] == expected


def test_an_explicit_split_file_wins_over_discovery(tmp_path, tiny_model, cli_runner):
    data = tmp_path / "wnut"
    data.mkdir()
    (data / "annotated-tweets.conll").write_text(GOOD_NER)  # a name that says no split
    (data / "dev.conll").write_text(GOOD_NER)
    result = cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--data", str(data), "--max-steps", "1",
                                           f"data.train={data / 'annotated-tweets.conll'}"))
    assert result.exit_code == 0, result.output
    nothing = cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--data", str(data), "--overwrite"))
    assert nothing.exit_code == 1 and "Looked for a file name part" in nothing.output and "wnut17train" in nothing.output
    (data / "train.a.conll").write_text(GOOD_NER)
    (data / "train.b.conll").write_text(GOOD_NER)  # two train candidates: ambiguous, unless one is named
    assert "several files look like the train split" in cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--data", str(data))).output
    named = cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--data", str(data), "--max-steps", "1", "--overwrite",
                                          f"data.train={data / 'train.b.conll'}"))
    assert named.exit_code == 0, named.output


# -- files it must never lose --------------------------------------------------------------------


def test_overwrite_removes_only_what_a_run_wrote(tmp_path, tiny_model, cli_runner):
    out = tmp_path / "out"
    assert cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--max-steps", "1")).exit_code == 0
    manifest = json.loads((out / "run.json").read_text())["files"]
    assert {"adapter", "metrics.json", "run.json"} <= set(manifest) and "checkpoints" not in manifest
    assert cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--max-steps", "1", "--overwrite")).exit_code == 0
    (out / "my-notes.txt").write_text("mine")  # the user's own file in the run folder
    refused = cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--max-steps", "1", "--overwrite"))
    assert refused.exit_code == 1 and "holds files that no peft-hub run wrote (my-notes.txt)" in refused.output
    assert (out / "my-notes.txt").read_text() == "mine" and (out / "run.json").exists()


@pytest.mark.parametrize("content, message", [
    ({"thesis.tex": "x"}, "holds files that no peft-hub run wrote (thesis.tex)"),
    ({"checkpoints/checkpoint-2/x": "x"}, "holds an interrupted run (pass --resume to continue it)"),
    ({"tensorboard/events": "x"}, "holds what is left of a run that did not finish"),
])
def test_a_non_empty_folder_is_never_mixed_into(tmp_path, tiny_model, cli_runner, content, message):
    for name, text in content.items():
        (tmp_path / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / name).write_text(text)
    result = cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, "--max-steps", "1"))
    assert result.exit_code == 1 and message in result.output
    assert all((tmp_path / "out" / name).exists() for name in content)


@pytest.mark.parametrize("extra", [("--data", "./nowhere"), ("--data", str(SAMPLES / "classify")), ("training.epochs=0",)])
def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path, tiny_model, cli_runner, extra):
    result = cli_runner.invoke(cli, _adapt(tmp_path, tiny_model, *extra))
    assert result.exit_code == 1
    assert not (tmp_path / "out").exists()


def test_text_the_tokenizer_does_not_know_is_warned_about(tmp_path, tiny_model, cli_runner):
    greek = "".join("Αθήνα B-LOC\nείναι O\nπόλη O\n\n" for _ in range(8))
    command = [a for a in _adapt(tmp_path, tiny_model, "--data", str(_ner_dir(tmp_path, greek, greek)), "--max-steps", "1") if a != "--quiet"]
    result = cli_runner.invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert "WARNING: 100% of the tokens of the first training examples are [UNK]" in result.output


def _alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines + ["task: {name: ner}", f"method: {{name: lora, options: {{r: *l{levels - 1}}}}}"]) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, cli_runner, levels):
    import time

    started = time.perf_counter()
    for command in (["validate", _file(tmp_path, "bomb.yaml", _alias_bomb(levels))],
                    ["validate", _file(tmp_path, "ok.yaml", "task: {name: ner}\nmethod: {name: lora}\n"), "method.options.r=" + _alias_bomb(levels).replace("\n", ", ").join("{}")]):
        result = cli_runner.invoke(cli, command)
        assert result.exit_code in (1, 2) and "expands to more than 100,000 values" in result.output, result.output[:300]
        assert len(result.output) < 2_000
    assert time.perf_counter() - started < 10  # not minutes


def test_a_huge_value_is_never_echoed_whole(tmp_path, cli_runner):
    values = ", ".join(["x"] * 5_000)  # 5,000 values: within the cap, and the wrong type for r
    result = cli_runner.invoke(cli, ["validate", _file(tmp_path, "big.yaml", f"task: {{name: ner}}\nmethod: {{name: lora, options: {{r: [{values}]}}}}\n")])
    assert result.exit_code == 1 and "method.options.r: expected an integer, got ['x', 'x'" in result.output
    assert len(result.output) < 1_000


# -- damaged run directories ----------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model):
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("finished") / "run"
    result = CliRunner().invoke(cli, ["adapt", "--method", "lora", "--task", "ner", "--model", str(tiny_model),
                                      "--output", str(out), "--max-steps", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("damage, message", [
    (lambda run: _truncate(next((run / "adapter").glob("*.safetensors"))), "is damaged: its sha256 is not the one recorded"),
    (lambda run: next((run / "adapter").glob("*.safetensors")).unlink(), "adapter_model.safetensors is missing"),
    (lambda run: (run / "run.json").write_text('{"complete": tr'), "run.json is damaged (JSONDecodeError"),
    (lambda run: (run / "recipe.yaml").unlink(), "recipe.yaml is missing"),
    (lambda run: (run / "labels.json").write_text('{"O": 0}'), "labels.json is damaged (expected a list of label names)"),
])
@pytest.mark.parametrize("command", ["predict", "evaluate", "merge"])
def test_a_damaged_run_is_named_with_what_to_do(finished_run, tmp_path, cli_runner, damage, message, command):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    damage(run)
    args = {"predict": ["predict", str(run), "Anna flew to Paris ."],
            "evaluate": ["evaluate", str(run), "--data", str(SAMPLES / "ner")],
            "merge": ["merge", str(run), "--output", str(tmp_path / "merged")]}[command]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert "Restore it" in result.output


def test_a_file_that_lost_its_blank_lines_is_warned_about(tmp_path, tiny_model, cli_runner):
    one_sentence = "".join("Peter B-PER\nflew O\nto O\nParis B-LOC\n. O\n" for _ in range(250))  # 1,250 words, no blank line
    command = [a for a in _adapt(tmp_path, tiny_model, "--data", str(_ner_dir(tmp_path, one_sentence)), "--max-steps", "1") if a != "--quiet"]
    result = cli_runner.invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert "1 sentence(s) of more than 1000 words (the first at line 1: 1250 words): did the file lose the blank lines" in result.output


def test_mixed_tag_schemes_are_warned_about_with_their_lines(tmp_path, tiny_model, cli_runner):
    bioes = "Peter B-PER\nBlackburn E-PER\nflew O\n\nParis S-LOC\n\n"
    iob2 = "Anna B-PER\nSchmidt I-PER\nflew O\n\nLyon B-LOC\nrains O\n\n"
    command = [a for a in _adapt(tmp_path, tiny_model, "--data", str(_ner_dir(tmp_path, bioes * 3 + iob2)), "--max-steps", "1") if a != "--quiet"]
    result = cli_runner.invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert "but 2 entities end on a B- or I- tag as IOB writes them (lines 20, 23)" in result.output
