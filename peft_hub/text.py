"""Unlabelled text: documents from files, tokenized and grouped into blocks for pretraining; texts
to embed; unlabelled pools for self-training and distillation.

Formats: plain text (one document per line, or per blank-line separated paragraph), JSON Lines
(``--text-field``), PubTator (``PMID|t|title`` / ``PMID|a|abstract`` lines; annotation lines
skipped), a saved ``datasets`` directory or a hub id. Corpora can be streamed (read, tokenized and
grouped lazily) instead of loaded whole.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .data import find_split_files, is_saved_dataset, jsonl_objects, load_dataset_splits, read_lines
from .errors import DataError, PeftHubError
from .models import special_tokens

PUBTATOR_RE = re.compile(r"^(\d+)\|([ta])\|(.*)$")
# a sentence ends at . ! ? (maybe followed by a closing quote or bracket) before a space and an
# upper-case letter, a digit or an opening quote/bracket: "... actor . He had ..." (WikiText)
SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
MIN_SENTENCE_WORDS = 3  # fewer words holding a letter: a heading or debris ("= = Career = =")
UNITS = ("blocks", "documents", "sentences")
FORMATS = ("auto", "text", "jsonl", "pubtator")


def _detect(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.suffix.lower() in (".jsonl", ".json"):
        return "jsonl"
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return "pubtator" if PUBTATOR_RE.match(line.strip()) else "text"
    return "text"


def _read_lines_lazily(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding) as handle:
            for number, line in enumerate(handle, 1):
                yield number, line.rstrip("\n")
    except UnicodeDecodeError:
        read_lines(path, encoding)  # raises a DataError naming the line
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}.") from None


def documents_in_file(path: Path, fmt: str = "auto", text_field: str = "text", paragraphs: bool = False,
                      encoding: str = "utf-8") -> Iterator[str]:
    """Documents of one file, read lazily."""
    fmt = _detect(path, fmt)
    if fmt == "jsonl":
        for number, obj in jsonl_objects(_read_lines_lazily(path, encoding), path):
            if not isinstance(obj.get(text_field), str):
                raise DataError(f"{path}, line {number}: no text field {text_field!r} (found {sorted(obj)}). Set --text-field.")
            yield obj[text_field]
    elif fmt == "pubtator":
        current, parts = None, []
        for _, line in _read_lines_lazily(path, encoding):
            match = PUBTATOR_RE.match(line.strip())
            if not match:
                continue  # annotation lines (PMID<TAB>start<TAB>end ...) and blank lines
            if match.group(1) != current and parts:
                yield " ".join(parts)
                parts = []
            current = match.group(1)
            if match.group(3).strip():
                parts.append(match.group(3).strip())
        if parts:
            yield " ".join(parts)
    elif fmt == "text":
        paragraph: list[str] = []
        for _, line in _read_lines_lazily(path, encoding):
            if not paragraphs:
                if line.strip():
                    yield line.strip()
            elif line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                yield " ".join(paragraph)
                paragraph = []
        if paragraph:
            yield " ".join(paragraph)
    else:
        raise DataError(f"Text format {fmt!r} is not known. Use one of: {', '.join(FORMATS)}.")


def text_files(path: str | Path) -> dict[str, list[Path]]:
    """Files of a corpus: ``{"train": [...], "validation": [...]}`` (validation only when a file
    is named like one, e.g. NCBIdevelopset_corpus.txt or valid.txt)."""
    path = Path(path)
    if path.is_file():
        return {"train": [path]}
    if not path.is_dir():
        raise DataError(f"{path} is not a file or directory.")
    try:
        found = find_split_files(path)
        return {split: [p] for split, p in found.items() if split in ("train", "validation")}
    except DataError:
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md"]
        if not files:
            raise DataError(f"{path} holds no text files.") from None
        return {"train": files}


def documents(sources: Iterable[str | Path], fmt: str = "auto", text_field: str = "text", paragraphs: bool = False,
              encoding: str = "utf-8") -> Iterator[str]:
    """Documents of every source in turn: files, directories, a saved dataset or a hub id."""
    for source in sources:
        source = str(source)
        if is_saved_dataset(source) or not os.path.exists(source):
            for name, ds in load_dataset_splits(source).items():
                if text_field not in ds.column_names:
                    raise DataError(f"{source} ({name}): no column {text_field!r}; columns are {ds.column_names}. Set --text-field.")
                yield from (t for t in ds[text_field] if isinstance(t, str) and t.strip())
            continue
        for split_files in text_files(source).values():
            for path in split_files:
                yield from documents_in_file(path, fmt, text_field, paragraphs, encoding)


def hold_out(docs: Iterable[str], fraction: float) -> tuple[Iterator[str], list[str]]:
    """Every k-th document (k = round(1/fraction)) goes to validation: deterministic, streamable."""
    held: list[str] = []
    every = max(2, round(1 / fraction)) if fraction > 0 else 0

    def train() -> Iterator[str]:
        for index, doc in enumerate(docs):
            if every and index % every == every - 1:
                held.append(doc)
            else:
                yield doc

    return train(), held


def split_sentences(text: str) -> list[str]:
    """The sentences of a text (a rule, not a parser: ends at . ! ? before a capital or digit),
    without those of fewer than :data:`MIN_SENTENCE_WORDS` words that hold a letter."""
    parts = (part.strip() for part in SENTENCE_END_RE.split(text))
    return [p for p in parts if sum(any(c.isalpha() for c in word) for word in p.split()) >= MIN_SENTENCE_WORDS]


class BlockBuilder:
    """Tokenizes documents and groups them into model inputs, by ``unit``:

    - ``blocks`` (default): documents are concatenated with ``[SEP]`` between them and cut into
      blocks of ``block_size`` tokens including ``[CLS]``/``[SEP]``;
    - ``documents``: one document per block, truncated to ``block_size``;
    - ``sentences``: one sentence per block (:func:`split_sentences`), truncated, carrying its
      ``text`` and the index of its ``document`` (so that consecutive sentences can be paired).

    With ``word_ids``, each block carries the index of the word every token belongs to (for
    whole-word masking; words come from the tokenizer's pre-tokenizer, so WordPiece, BPE and
    SentencePiece are handled alike).
    """

    def __init__(self, tokenizer: Any, block_size: int, unit: str = "blocks", word_ids: bool = False):
        if unit not in UNITS:
            raise DataError(f"Unknown input unit {unit!r}; use one of {', '.join(UNITS)}.")
        self.tokenizer = tokenizer
        self.prefix, self.suffix = special_tokens(tokenizer)  # [CLS] ... [SEP] or <s> ... </s>
        self.special_ids = set(tokenizer.all_special_ids)
        self.size = block_size - len(self.prefix) - len(self.suffix)
        self.unit = unit
        self.word_ids = word_ids
        self._ids: list[int] = []
        self._words: list[int] = []
        self._next_word = 0
        self._documents = 0
        self.truncated = 0

    def _block(self, ids: list[int], words: list[int]) -> dict:
        input_ids = self.prefix + ids + self.suffix
        block = {"input_ids": input_ids, "special_tokens_mask": [int(i in self.special_ids) for i in input_ids]}
        if self.word_ids:
            first = words[0] if words else 0
            block["word_ids"] = [-1] * len(self.prefix) + [
                -1 if i in self.special_ids else w - first for i, w in zip(ids, words)
            ] + [-1] * len(self.suffix)
        return block

    def add(self, docs: list[str]) -> Iterator[dict]:
        """Blocks completed by these documents (grouped mode keeps the remainder for later)."""
        texts, documents = docs, None
        if self.unit == "sentences":
            split = [split_sentences(doc) for doc in docs]
            texts = [sentence for sentences in split for sentence in sentences]
            documents = [self._documents + n for n, sentences in enumerate(split) for _ in sentences]
            self._documents += len(docs)
        enc = self.tokenizer(texts, add_special_tokens=False)
        sep = self.tokenizer.sep_token_id
        for index in range(len(texts)):
            ids = enc["input_ids"][index]
            if not ids:
                continue
            words = [self._next_word + (w if w is not None else 0) for w in enc.word_ids(index)]
            self._next_word = max(words) + 1
            if self.unit != "blocks":
                if len(ids) > self.size:
                    self.truncated += 1
                block = self._block(ids[: self.size], words[: self.size])
                if documents is not None:
                    block.update(text=texts[index], document=documents[index])
                yield block
                continue
            if self._ids and sep is not None:
                self._ids.append(sep)
                self._words.append(self._next_word)
                self._next_word += 1
            self._ids.extend(ids)
            self._words.extend(words)
            while len(self._ids) >= self.size:
                yield self._block(self._ids[: self.size], self._words[: self.size])
                self._ids, self._words = self._ids[self.size:], self._words[self.size:]

    def finish(self) -> Iterator[dict]:
        """The last, shorter block (if it holds at least a quarter of a block)."""
        if self._ids and len(self._ids) >= self.size // 4:
            yield self._block(self._ids, self._words)
        self._ids, self._words = [], []


def build_blocks(docs: Iterable[str], builder: BlockBuilder, chunk: int = 512, limit: int | None = None) -> Iterator[dict]:
    """Blocks from documents, tokenized ``chunk`` documents at a time; stops after ``limit`` blocks."""
    count = 0
    batch: list[str] = []

    def emit(blocks: Iterable[dict]) -> Iterator[dict]:
        nonlocal count
        for block in blocks:
            if limit is not None and count >= limit:
                return
            count += 1
            yield block

    for doc in docs:
        batch.append(doc)
        if len(batch) == chunk:
            yield from emit(builder.add(batch))
            batch = []
            if limit is not None and count >= limit:
                return
    if batch:
        yield from emit(builder.add(batch))
    yield from emit(builder.finish())


def streaming_blocks(make_docs: Callable[[], Iterable[str]], builder_args: dict, tokenizer: Any) -> Any:
    """An iterable torch dataset that reads, tokenizes and groups the corpus lazily, on each pass."""
    import torch.utils.data

    class StreamingBlocks(torch.utils.data.IterableDataset):
        def __iter__(self) -> Iterator[dict]:
            return build_blocks(make_docs(), BlockBuilder(tokenizer, **builder_args))

    return StreamingBlocks()


def read_texts(path: str, text_field: str = "text") -> list[str]:
    """Texts to embed: one per line of a text file, or the ``text_field`` of each JSONL object."""
    if Path(path).suffix.lower() in (".jsonl", ".json"):
        texts = list(documents_in_file(Path(path), "jsonl", text_field))
    else:
        texts = [line.strip() for line in read_lines(path)]
    if not any(t.strip() for t in texts):
        raise DataError(f"{path} holds no text to embed.")
    empty = [n for n, t in enumerate(texts, 1) if not t.strip()]
    if empty:
        raise DataError(f"{path}, line {empty[0]}: an empty text ({len(empty)} in all). Remove empty lines: each line is one text.")
    return texts


def read_unlabeled(source: str, task: Any, labels: list[str], options: Any, *, text_field: str = "text", skip: int = 0,
                   limit: int | None = None) -> list:
    """An unlabelled pool (self-training's, or distillation's unlabelled text) as ``task``'s
    examples, their labels placeholders: a labelled file the task reads (labels ignored), else one
    text per line or per JSONL object. A file counts as labelled only when the task reads it with
    labels of the run's set: plain text a reader can parse (a first word taken as a label) stays
    text. The first ``skip`` examples are dropped, then at most ``limit`` kept."""
    from .schema import DataConfig

    try:
        examples = task.read_data(DataConfig(train=source, validation_split=0), options)["train"]
        if not set(task.labels({"train": examples})) <= set(labels):
            raise ValueError("not labelled with this run's labels")
    except (PeftHubError, KeyError, ValueError):
        try:
            examples = [task.unlabeled_example(t, labels) for t in read_texts(source, text_field) if t.strip()]
        except NotImplementedError:
            raise PeftHubError(f"The {task.name!r} task cannot read unlabeled text (it has no unlabeled_example): "
                               "it cannot learn from an unlabelled pool.") from None
    examples = examples[skip:][:limit]
    if not examples:
        raise DataError(f"The unlabeled pool {source} holds no examples (after skipping {skip}).")
    return examples
