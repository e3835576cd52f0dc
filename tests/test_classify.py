"""The classification task: every supported file format, on real files and malformed ones."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_data
from peft_hub import registry
from peft_hub.errors import DataError
from peft_hub.recipes import DataConfig
from peft_hub.tasks import Evaluation


@pytest.fixture
def task():
    return registry.get_task("classify")


def _read(task, path, **options):
    return task.read_data(DataConfig(path=str(path)), task.Options(**options))


@pytest.mark.real
def test_sst2_label_first_lines(task):
    splits = _read(task, shared_data("sst2"))
    assert {k: len(v) for k, v in splits.items()} == {"train": 6920, "validation": 872, "test": 1821}
    assert task.labels(splits) == ["0", "1"]
    assert splits["train"][0].text.startswith("a stirring , funny")


@pytest.mark.real
def test_agnews_tsv_text_then_label(task):
    splits = _read(task, shared_data("agnews") / "dev.tsv")
    assert task.labels(splits) == ["Business", "Sci/Tech", "Sports", "World"]
    assert splits["train"][0].text.startswith("p2pnet.net News")


def test_csv_jsonl_and_tsv_with_header(task, tmp_path):
    (tmp_path / "a.csv").write_text('sentence,label\n"good, really",pos\nbad,neg\n')
    assert [(e.text, e.label) for e in _read(task, tmp_path / "a.csv")["train"]] == [("good, really", "pos"), ("bad", "neg")]
    (tmp_path / "b.jsonl").write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    assert [e.label for e in _read(task, tmp_path / "b.jsonl")["train"]] == ["1", "0"]
    (tmp_path / "c.tsv").write_text("label\ttext\npos\tgood\nneg\tbad\n")
    assert [(e.text, e.label) for e in _read(task, tmp_path / "c.tsv")["train"]] == [("good", "pos"), ("bad", "neg")]


def test_missing_label_column(task, tmp_path):
    (tmp_path / "a.csv").write_text("sentence,score\ngood,1\n")
    with pytest.raises(DataError, match="cannot tell which column holds the label.*label_column"):
        _read(task, tmp_path / "a.csv")
    with pytest.raises(DataError, match="no label column 'stars'"):
        _read(task, tmp_path / "a.csv", label_column="stars")
    (tmp_path / "b.jsonl").write_text('{"text": "good", "label": ""}\n')
    with pytest.raises(DataError, match="line 1: missing label"):
        _read(task, tmp_path / "b.jsonl")


def test_label_first_rejects_plain_text(task, tmp_path):
    (tmp_path / "train").write_text("\n".join(f"word{i} some text" for i in range(200)))
    with pytest.raises(DataError, match="not labels"):
        _read(task, tmp_path / "train")


def test_tsv_with_wrong_column_count(task, tmp_path):
    (tmp_path / "a.tsv").write_text("good\tpos\nbad\tneg\textra\n")
    with pytest.raises(DataError, match="line 2: expected 2 tab-separated columns"):
        _read(task, tmp_path / "a.tsv")


def test_metrics_accuracy_and_macro_f1(task):
    scores = task.compute_metrics(Evaluation(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"], [], []))
    assert scores["accuracy"] == 0.75
    assert scores["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
