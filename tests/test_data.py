"""Data readers: real files from ../shared/data and malformed input."""

from __future__ import annotations

import pytest

from conftest import shared_data
from peft_hub.data import find_split_files, read_columns, read_jsonl, read_lines
from peft_hub.errors import DataError


@pytest.mark.real
def test_conll2003_splits_and_counts():
    files = find_split_files(shared_data("conll2003"))
    assert {k: p.name for k, p in files.items()} == {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
    counts = {k: len(read_columns(p)) for k, p in files.items()}
    assert counts == {"train": 14041, "validation": 3250, "test": 3453}
    first = read_columns(files["train"])[0]
    assert first.tokens[:3] == ["EU", "rejects", "German"] and first.tags[:3] == ["B-ORG", "O", "B-MISC"]
    assert first.line == 3  # after the -DOCSTART- line and the blank line


@pytest.mark.real
def test_ncbi_tsv_splits_and_counts():
    files = find_split_files(shared_data("NCBI-disease-IOB"))
    assert files["validation"].name == "devel.tsv"
    counts = {k: len(read_columns(p)) for k, p in files.items()}
    assert counts == {"train": 5424, "validation": 923, "test": 940}


@pytest.mark.real
def test_sst2_split_names_with_dots():
    files = find_split_files(shared_data("sst2"))
    assert {k: p.name for k, p in files.items()} == {
        "train": "stsa.binary.train", "validation": "stsa.binary.dev", "test": "stsa.binary.test"}


def test_missing_train_split(tmp_path):
    (tmp_path / "dev.txt").write_text("a O\n")
    with pytest.raises(DataError, match="no training file found.*dev.txt"):
        find_split_files(tmp_path)


def test_ambiguous_split_files(tmp_path):
    (tmp_path / "train.txt").write_text("a O\n")
    (tmp_path / "train_extra.txt").write_text("a O\n")
    with pytest.raises(DataError, match="several files look like the train split"):
        find_split_files(tmp_path)


def test_inconsistent_columns_name_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-PER\n")
    with pytest.raises(DataError, match=r"train.txt, line 4: 3 columns, but line 1 has 4"):
        read_columns(path)


def test_single_column_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("EU B-ORG\nrejects\n")
    with pytest.raises(DataError, match="line 2: expected at least 2 columns"):
        read_columns(path)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"EU B-ORG\n\nM\xfcller B-PER\n")
    with pytest.raises(DataError, match=r"line 3: not valid UTF-8 \(byte 0xfc\).*iconv"):
        read_lines(path)


def test_tsv_tokens_may_contain_spaces(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("New York\tB-LOC\ncity\tO\n")
    (sentence,) = read_columns(path)
    assert sentence.tokens == ["New York", "city"]


def test_jsonl_errors(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(DataError, match="line 3: invalid JSON"):
        read_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match="line 1: expected a JSON object"):
        read_jsonl(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_lines(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_lines(tmp_path)
