"""Text classification: one label per text, scored with accuracy and macro-F1.

Data: a directory of split files or single files in one of these formats:
TSV (``text<TAB>label`` or ``label<TAB>text``, header optional), CSV with a header, JSONL
(``{"text": ..., "label": ...}``), ``label text`` lines (SST-2 style), a saved ``datasets``
directory or a hub id. Column names are set with the ``text_column`` / ``label_column`` options.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import peft_hub
from peft_hub import (
    DataError,
    accuracy_macro_f1,
    is_saved_dataset,
    label_set,
    labelled,
    load_dataset_splits,
    load_with_head,
    model_outputs,
    option,
    read_jsonl,
    read_lines,
    split_files,
)

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.classify")
TEXT_NAMES = ("text", "sentence", "content", "review", "document")
LABEL_NAMES = ("label", "labels", "class", "category", "target")


@dataclass
class ClassifyOptions(peft_hub.Options):
    text_column: str | None = option(None, "Column/key holding the text (default: text, sentence, content ...).")
    label_column: str | None = option(None, "Column/key holding the label (default: label, class, category ...).")
    max_length: int = option(256, "Most sub-tokens per text; longer texts are truncated (and counted).")
    batch_size: int = option(64, "Texts per forward pass in `predict`.")
    coarse_labels: bool = option(False, "Hierarchical labels such as TREC's 'LOC:city': keep only the part before the first label_separator ('LOC').")
    label_separator: str = option(":", "Separator of hierarchical label levels (used by coarse_labels).")


@dataclass
class Example:
    text: str
    label: str
    line: int


def _pick(names: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, where: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise DataError(f"{where}: no {what} column {wanted!r}; columns are {names}. Set {what}_column to one of them.")
        return wanted
    for name in names:
        if name.lower() in defaults:
            return name
    raise DataError(f"{where}: cannot tell which column holds the {what}; columns are {names}. Set the task option {what}_column=NAME.")


def _rows_with_header(rows: list[tuple[int, dict]], options, where: str) -> list[Example]:
    if not rows:
        return []
    names = list(rows[0][1])
    text_key = _pick(names, options.text_column, TEXT_NAMES, "text", where)
    label_key = _pick(names, options.label_column, LABEL_NAMES, "label", where)
    out = []
    for number, row in rows:
        if row.get(label_key) in (None, "") or row.get(text_key) is None:
            raise DataError(f"{where}, line {number}: missing {'label' if row.get(label_key) in (None, '') else 'text'}.")
        out.append(Example(str(row[text_key]), str(row[label_key]), number))
    return out


def _read_tsv(lines: list[str], options, where: str) -> list[Example]:
    rows = [(n, line.split("\t")) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        return []
    first = [c.strip() for c in rows[0][1]]
    named = {f"{what}_column": value for what, value in (("text", options.text_column), ("label", options.label_column)) if value}
    missing = {option: value for option, value in named.items() if value not in first}
    if missing:  # never take a data row for a header because an option named a column
        option, value = next(iter(missing.items()))
        raise DataError(f"{where}: task option {option}={value!r} names a column that is not in the header line {first}. "
                        "Name one of those columns, or, for a file without a header line, leave the column options unset.")
    if any(c.lower() in TEXT_NAMES + LABEL_NAMES for c in first) or named:
        return _rows_with_header([(n, dict(zip(first, cells))) for n, cells in rows[1:]], options, where)
    for number, cells in rows:
        if len(cells) != 2:
            raise DataError(f"{where}, line {number}: expected 2 tab-separated columns (text and label), got {len(cells)}. A tab inside the text? Use CSV (quoted) or JSONL.")
    # the label column is the one with few distinct, short values
    distinct = [len({cells[i] for _, cells in rows}) for i in (0, 1)]
    label_col = 0 if distinct[0] < distinct[1] else 1
    return [Example(cells[1 - label_col], cells[label_col].strip(), n) for n, cells in rows]


def _read_label_first(lines: list[str], where: str) -> list[Example]:
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if not text:
            raise DataError(f"{where}, line {number}: expected '<label> <text>', got {line!r}.")
        out.append(Example(text, label, number))
    labels = {e.label for e in out}
    if len(labels) > max(50, len(out) // 2):
        raise DataError(
            f"{where}: read as '<label> <text>' lines, but the first words take {len(labels)} different values, "
            "so they are not labels. Use TSV (text<TAB>label), CSV or JSONL with a label column."
        )
    return out


def read_file(path: Path, fmt: str, options, encoding: str = "utf-8") -> list[Example]:
    where = str(path)
    if fmt not in ("auto", "jsonl", "csv", "tsv", "label-first"):
        raise DataError(f"data.format {fmt!r} is not a format of the classify task. Use auto, tsv, csv, jsonl or label-first.")
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(path.suffix.lower(), "auto")
    if fmt == "jsonl":
        return _rows_with_header(read_jsonl(path, encoding), options, where)
    lines = read_lines(path, encoding)  # once, whatever the format turns out to be
    if fmt == "auto":
        fmt = "tsv" if any("\t" in line for line in lines[:50]) else "label-first"
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        return _rows_with_header([(i + 2, row) for i, row in enumerate(reader)], options, where)
    if fmt == "tsv":
        return _read_tsv(lines, options, where)
    return _read_label_first(lines, where)


def _refuse_joined_labels(examples: list[Example]) -> None:
    """Labels such as "2,15" whose parts are labels of other examples: several labels per text, which
    this task would learn as classes of their own."""
    single = {e.label for e in examples}
    joined = [e for e in examples if (parts := [p.strip() for p in re.split(r"[,;]", e.label)]) and len(parts) > 1
              and all(p in single for p in parts)]
    if joined and len(joined) >= max(2, len(examples) // 100):
        example = joined[0]
        raise DataError(f"The data looks multi-label: {len(joined):,} of {len(examples):,} training examples have labels joined "
                        f"by ',' or ';' whose parts are labels themselves (line {example.line}: {example.label!r}); this task "
                        "would learn each combination as a class of its own. Use --task multilabel.")


class Classify(peft_hub.Task):
    name = "classify"
    description = "Text classification (one label per text); accuracy and macro-F1."
    Options = ClassifyOptions
    keep_full_precision = ["classifier"]  # the head stays out of 8-bit/4-bit
    peft_task_type = "SEQ_CLS"
    auto_class = "AutoModelForSequenceClassification"
    example_shape = "text"
    display = "label"
    sentence_embeddings = True
    primary_metric = "f1"  # macro-F1: accuracy hides a model that ignores the rare classes
    summary_metrics = ("accuracy", "f1")

    def sample_data(self):
        return Path(__file__).parent / "samples" / "classify"

    def read_data(self, data, options):
        splits = {}
        if data.path and (not os.path.exists(data.path) or is_saved_dataset(data.path)):
            for name, ds in load_dataset_splits(data.path).items():
                rows = [(i + 1, row) for i, row in enumerate(ds)]
                label_feature = ds.features.get(options.label_column or "label")
                names = getattr(label_feature, "names", None)
                examples = _rows_with_header(rows, options, f"{data.path} ({name})")
                if names:
                    for e in examples:
                        e.label = names[int(e.label)]
                splits[name] = examples
        else:
            for split, path in split_files(data).items():
                examples = read_file(path, data.format, options, data.encoding)
                if not examples:
                    raise DataError(f"{path}: the {split} split holds no examples. Remove the file or fill it.")
                splits[split] = examples
        if options.coarse_labels:
            for example in (e for examples in splits.values() for e in examples):
                example.label = example.label.split(options.label_separator, 1)[0]
        _refuse_joined_labels(splits.get("train", []))
        return splits

    def labels(self, splits, data=None):
        return label_set(splits)

    def unlabeled_example(self, text, labels):
        return Example(text, labels[0], 0)

    def pseudo_label(self, model, tokenizer, examples, labels, options):
        predictions = self.predict(model, tokenizer, [{"text": e.text} for e in examples], labels, options)
        return [(Example(e.text, p["label"], e.line), p["score"], p["label"]) for e, p in zip(examples, predictions)]

    def encode(self, examples, tokenizer, labels, options):
        label2id = {label: i for i, label in enumerate(labels)}
        max_length = min(options.max_length, tokenizer.model_max_length)  # no more than the model has positions
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
        truncated = sum(len(ids) >= max_length for ids in enc["input_ids"])
        if truncated:
            log.info("%d text(s) truncated to max_length=%d sub-tokens", truncated, max_length)
        return [
            {**{key: enc[key][i] for key in enc.keys()}, "labels": label2id[e.label]}
            for i, e in enumerate(examples)
        ]

    def build_model(self, model_path, labels, **load_kwargs):
        from transformers import AutoModelForSequenceClassification

        return load_with_head(AutoModelForSequenceClassification, model_path, labels, **load_kwargs)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, evaluation):
        return accuracy_macro_f1(evaluation.predictions, evaluation.label_ids, len(evaluation.labels))

    def sample_inputs(self):
        return [{"text": "the staff were friendly"}, {"text": "a dull movie"}]

    def predict(self, model, tokenizer, inputs, labels, options):
        texts = [i["text"] for i in inputs]
        chunks = [texts[begin : begin + options.batch_size] for begin in range(0, len(texts), options.batch_size)]
        collate = self.collator(tokenizer)

        def batch(chunk):
            enc = tokenizer(chunk, truncation=True, max_length=min(options.max_length, tokenizer.model_max_length))
            return collate([{k: enc[k][i] for k in enc.keys()} for i in range(len(chunk))])

        return [{"text": text, **labelled(labels, row)}
                for chunk, out in zip(chunks, model_outputs(model, map(batch, chunks)))
                for text, row in zip(chunk, out.logits.float().softmax(-1))]

    def format_prediction(self, inputs, prediction):
        return f"{prediction['label']}\t{prediction['score']:.2f}\t{inputs['text']}"


@peft_hub.hookimpl
def register_tasks(register):
    register(Classify())
