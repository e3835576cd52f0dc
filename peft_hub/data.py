"""Readers for real data formats, shared by the task plugins.

They return plain Python structures with the line each example came from, so that a task can
point a user at the exact place of a problem. Format *meaning* (which column is the label, what
tag scheme is used) belongs to the tasks.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError

SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("dev", "devel", "develop", "valid", "validation", "val", "testa"),  # CoNLL-2003: eng.testa
    "test": ("test", "testing", "testb"),  # CoNLL-2003: eng.testb
}
_IGNORED = {"readme", "source", "license", "licence"}
_WORDS = "|".join(sorted({w for words in SPLIT_NAMES.values() for w in words}, key=len, reverse=True))
# a name part that is a split word, maybe glued to a prefix ending in a digit (wnut17train), to
# "set" (NCBItrainset_corpus.txt) or to trailing digits (train1)
_PART_RE = re.compile(rf"(?:[a-z0-9]*\d)?({_WORDS})\d*|[a-z0-9]*?({_WORDS})set")
SPLIT_RULE = ("a file name part (split at '.', '_', '-' and spaces) that is a split word: train/training, "
              "dev/devel/develop/valid/validation/val/testa, test/testing/testb; glued to a prefix ending in a digit "
              "(wnut17train), to digits (train1) or followed by 'set' (NCBItrainset) counts too")


def split_of(name: str) -> str | None:
    """The split a file name names (``train``, ``validation``, ``test``), or None."""
    parts = {p.lower() for p in re.split(r"[._\-\s]+", name) if p}
    if parts & _IGNORED or name.lower().endswith(".md"):
        return None
    for part in parts:
        match = _PART_RE.fullmatch(part)
        if match:
            word = match.group(1) or match.group(2)
            return next(split for split, words in SPLIT_NAMES.items() if word in words)
    return None


def find_split_files(directory: str | Path, given: set[str] = frozenset()) -> dict[str, Path]:
    """Split files in ``directory`` by name (see :data:`SPLIT_RULE`): ``train.txt``,
    ``stsa.binary.dev``, ``eng.testa``, ``wnut17train.conll``, ``emerging.test.annotated``.
    Splits in ``given`` are named explicitly by the caller: they are neither required nor
    ambiguous here."""
    directory = Path(directory)
    found: dict[str, list[Path]] = {split: [] for split in SPLIT_NAMES}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith(".") and (split := split_of(path.name)):
            found[split].append(path)
    result = {}
    for split, paths in found.items():
        if len(paths) > 1 and split not in given:
            names = ", ".join(p.name for p in paths)
            raise DataError(
                f"{directory}: several files look like the {split} split ({names}). "
                f"Name the one to use with data.{split}=FILE (or --data FILE)."
            )
        if paths:
            result[split] = paths[0]
    if "train" not in result and "train" not in given:
        files = ", ".join(p.name for p in sorted(directory.iterdir()) if p.is_file()) or "no files"
        raise DataError(
            f"{directory}: no training file found (found {files}). Looked for {SPLIT_RULE}. "
            "Rename it, or pass it with data.train=FILE."
        )
    return result


def split_files(data: Any) -> dict[str, Path]:
    """The files named by a recipe's ``data`` section: ``data.path`` (a directory of split files
    or a single training file), then ``data.train`` / ``validation`` / ``test`` on top: an
    explicit split file always wins over what the directory's names say."""
    given = {split for split in SPLIT_NAMES if getattr(data, split)}
    files: dict[str, Path] = {}
    if data.path:
        path = Path(data.path)
        files = find_split_files(path, given) if path.is_dir() else {"train": path}
    for split in given:
        files[split] = Path(getattr(data, split))
    if "train" not in files:
        raise DataError("No training data: pass --data DIR (or data.train=FILE).")
    return files


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """Lines of a text file, gzip'd or not (UTF-8 unless told: a BOM is ignored); bad bytes are
    reported with their line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file.") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}.") from None
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
        text = raw.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not valid {'UTF-8' if utf8 else encoding} (byte 0x{raw[exc.start]:02x}). Say the file's encoding "
            f"with data.encoding=NAME (e.g. data.encoding=latin-1), or convert it: `iconv -f latin1 -t utf-8 {path.name} > fixed.txt`."
        ) from None
    return text.splitlines()


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line of the first token


def read_columns(path: str | Path, encoding: str = "utf-8") -> list[TaggedSentence]:
    """CoNLL-style column files: one token per line, the token first and its tag last, a blank
    line between sentences, ``-DOCSTART-`` lines skipped. Columns are split on tabs when the
    line has one (TSV), else on whitespace. Every line must have the same number of columns."""
    path = Path(path)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    width = None
    width_line = 0

    def flush() -> None:
        if tokens:
            sentences.append(TaggedSentence(list(tokens), list(tags), start))
            tokens.clear()
            tags.clear()

    for number, line in enumerate(read_lines(path, encoding), 1):
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            continue
        columns = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
        columns = [c.strip() for c in columns]
        if len(columns) < 2:
            raise DataError(
                f"{path}, line {number}: expected at least 2 columns (token ... tag), got {line!r}. "
                "Column files put one token per line with its tag in the last column."
            )
        if width is None:
            width, width_line = len(columns), number
        elif len(columns) != width:
            raise DataError(
                f"{path}, line {number}: {len(columns)} columns, but line {width_line} has {width}. "
                "Every token line needs the same columns; check for a stray space or tab in a token."
            )
        if not tokens:
            start = number
        tokens.append(columns[0])
        tags.append(columns[-1])
    flush()
    return sentences


def jsonl_objects(numbered_lines: Iterable[tuple[int, str]], path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-empty line of JSON Lines, read lazily."""
    for number, line in numbered_lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg}, column {exc.colno}). JSONL needs one complete JSON object per line.") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object per line, got {type(obj).__name__}.")
        yield number, obj


def read_jsonl(path: str | Path, encoding: str = "utf-8") -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-empty line of a JSON Lines file."""
    return list(jsonl_objects(enumerate(read_lines(path, encoding), 1), path))


def is_saved_dataset(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json"))


def load_dataset_splits(spec: str) -> dict[str, Any]:
    """A saved ``datasets`` directory or a hub id -> ``{split: datasets.Dataset}``."""
    import datasets

    datasets.disable_progress_bars()
    try:
        if os.path.isdir(spec):
            loaded = datasets.load_from_disk(spec)
        else:
            loaded = datasets.load_dataset(spec)
    except Exception as exc:  # datasets raises many kinds; all mean "cannot get this data"
        offline = " HF_HUB_OFFLINE=1 is set, so hub ids only work from the local cache." if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise DataError(
            f"Cannot load dataset {spec!r}: {type(exc).__name__}: {exc}.{offline} Pass a local directory "
            "of split files, a file, or a directory written by `Dataset.save_to_disk`."
        ) from None
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    aliases = {name: split for split, names in SPLIT_NAMES.items() for name in names}
    return {aliases.get(name, name): ds for name, ds in loaded.items()}
