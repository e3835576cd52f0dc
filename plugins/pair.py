"""Sentence pairs: classification (entailment, paraphrase) or regression (similarity scores).

Both texts go through the encoder together (``[CLS] a [SEP] b [SEP]``); the head reads the pair.
Classification is scored with accuracy and macro-F1, regression (``target: regression``) with
Pearson and Spearman correlation.

Data: a directory of split files or single files, read with quoting off (quotes are text):

- TSV with a header (GLUE's RTE: ``index, sentence1, sentence2, label``; SICK: ``sentence_A,
  sentence_B, entailment_label, relatedness_score, ..., SemEval_set``). A split column (``split``,
  ``SemEval_set``) splits one file into train / dev (``TRIAL``) / test;
- TSV without a header: ``text<TAB>text_pair<TAB>label``, or the STS benchmark's layout (``genre,
  file, year, id, score, sentence1, sentence2``); other layouts name columns by 0-based index;
- CSV with a header, JSONL (``{"text": ..., "text_pair": ..., "label": ...}``).

A split file without any label column (GLUE's test files hide their labels) is skipped with a note.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import peft_hub
from peft_hub import (
    SPLIT_NAMES,
    DataError,
    accuracy_macro_f1,
    label_set,
    labelled,
    load_pretrained,
    load_with_head,
    model_outputs,
    option,
    read_jsonl,
    read_lines,
    split_files,
)

log = logging.getLogger("peft_hub.pair")
TEXT_NAMES = ("sentence1", "sentence_a", "premise", "text_a", "question1", "text", "sentence")
PAIR_NAMES = ("sentence2", "sentence_b", "hypothesis", "text_b", "question2", "text_pair")
LABEL_NAMES = ("label", "gold_label", "entailment_label", "score", "relatedness_score", "similarity")
SPLIT_COLUMNS = ("split", "semeval_set")
SPLIT_VALUES = {**{w: s for s, words in SPLIT_NAMES.items() for w in words}, "trial": "validation"}
STSB_LAYOUT = (5, 6, 4)  # sentence1, sentence2, score columns of the STS benchmark's files


@dataclass
class PairOptions(peft_hub.Options):
    target: Literal["classification", "regression"] = option(
        "classification", "classification (labels) or regression (real-valued scores, e.g. STS-B, SICK relatedness).")
    text_column: str | int | None = option(None, "Column/key of the first text: a name, or a 0-based index in a file without header.")
    text_pair_column: str | int | None = option(None, "Column/key of the second text (name or index).")
    label_column: str | int | None = option(None, "Column/key of the label or score (name or index), e.g. relatedness_score for SICK-R.")
    split_column: str | None = option(None, "Column naming each row's split (TRAIN/TRIAL/TEST ...); default: split or SemEval_set when present.")
    max_length: int = option(256, "Most sub-tokens per pair; the longer text is cut first (and counted).")
    batch_size: int = option(64, "Pairs per forward pass in `predict`.")


@dataclass
class Example:
    text: str
    text_pair: str
    label: str | float
    line: int


def _column(names: list[str], wanted: str | int | None, defaults: tuple[str, ...], option_name: str, where: str) -> int | None:
    """Index of the column an option names (or the first default name present); None if absent."""
    lowered = [n.strip().lower() for n in names]
    if isinstance(wanted, int):
        if not 0 <= wanted < len(names):
            raise DataError(f"{where}: task option {option_name}={wanted} names column {wanted}, but rows have {len(names)} columns (0-{len(names) - 1}).")
        return wanted
    if wanted is not None:
        if wanted.lower() not in lowered:
            raise DataError(f"{where}: task option {option_name}={wanted!r} names no column; the columns are {names}. "
                            f"Set {option_name} to one of them.")
        return lowered.index(wanted.lower())
    return next((lowered.index(d) for d in defaults if d in lowered), None)


def _label(value: str, options: PairOptions, where: str) -> str | float:
    if options.target == "classification":
        return value.strip()
    try:
        score = float(value)
    except ValueError:
        raise DataError(f"{where}: the score {value!r} is not a number (task option target=regression).") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: the score {value!r} is not a finite number.")
    return score


def _rows(header: list[str] | None, rows: list[tuple[int, list[str]]], options: PairOptions, where: str) -> dict[str, list[Example]]:
    """Examples per split from rows of cells (the split column decides; otherwise all are ``"all"``)."""
    width = len(header) if header else len(rows[0][1])
    names = header or [str(i) for i in range(width)]
    if header is None and not any(isinstance(o, int) for o in (options.text_column, options.text_pair_column, options.label_column)):
        layout = (0, 1, 2) if width == 3 else STSB_LAYOUT if width >= 7 else None
        if layout is None:
            raise DataError(f"{where}: a file without a header needs 3 columns (text, text_pair, label) or the STS benchmark's layout; "
                            f"it has {width}. Add a header line, or name columns by index: task.options.text_column=0 ...")
        text, pair, label = layout
    else:
        text = _column(names, options.text_column, TEXT_NAMES, "text_column", where)
        pair = _column(names, options.text_pair_column, PAIR_NAMES, "text_pair_column", where)
        label = _column(names, options.label_column, LABEL_NAMES, "label_column", where)
        for index, what in ((text, "text"), (pair, "text_pair")):
            if index is None:
                raise DataError(f"{where}: cannot tell which column holds the {what}; the columns are {names}. "
                                f"Set the task option {what}_column=NAME.")
    split = _column(names, options.split_column, SPLIT_COLUMNS if header else (), "split_column", where)
    out: dict[str, list[Example]] = {}
    for number, cells in rows:
        at = f"{where}, line {number}"
        if len(cells) < width and not (header is None and width >= 7 and len(cells) >= 7):
            raise DataError(f"{at}: {len(cells)} tab-separated fields, expected {width}. A tab inside a text?")
        if label is None:
            value: str | float = ""
        elif not cells[label].strip():
            raise DataError(f"{at}: the label ({names[label]}) is empty.")
        else:
            value = _label(cells[label], options, at)
        name = "all"
        if split is not None:
            name = SPLIT_VALUES.get(cells[split].strip().lower())
            if name is None:
                raise DataError(f"{at}: split {cells[split]!r} in column {names[split]} is none of "
                                f"{sorted(SPLIT_VALUES)}. Set task.options.split_column, or split the file.")
        out.setdefault(name, []).append(Example(cells[text], cells[pair], value, number))
    if label is None:
        return {name: [] for name in out}  # no labels at all: nothing to train or score on
    return out


def read_file(path: Path, fmt: str, options: PairOptions, encoding: str = "utf-8") -> dict[str, list[Example]]:
    where = str(path)
    if fmt not in ("auto", "tsv", "csv", "jsonl"):
        raise DataError(f"data.format {fmt!r} is not a format of the pair task. Use auto, tsv, csv or jsonl.")
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix.lower(), "tsv")
    if fmt == "jsonl":
        objects = read_jsonl(path, encoding)
        if not objects:
            return {"all": []}
        keys = list(objects[0][1])
        rows = [(n, [str(obj.get(k, "")) for k in keys]) for n, obj in objects]
        return _rows(keys, rows, options, where)
    lines = read_lines(path, encoding)
    if fmt == "csv" and not any("\t" in line for line in lines[:5]):  # STS-B's .csv files are tab-separated
        table = list(csv.reader(io.StringIO("\n".join(lines))))
        rows = [(n, cells) for n, cells in enumerate(table, 1) if any(c.strip() for c in cells)]
    else:  # quoting off: a '"' is part of the text (RTE, STS-B)
        rows = [(n, line.split("\t")) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        return {"all": []}
    first = [c.strip().lower() for c in rows[0][1]]
    known = set(TEXT_NAMES + PAIR_NAMES + LABEL_NAMES + SPLIT_COLUMNS)
    given = {o.lower() for o in (options.text_column, options.text_pair_column, options.label_column) if isinstance(o, str)}
    if set(first) & (known | given):
        return _rows([c.strip() for c in rows[0][1]], rows[1:], options, where)
    return _rows(None, rows, options, where)


def pearson(x, y) -> float:
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator else 0.0


def ranks(x):
    """Ranks from 1, ties sharing their mean rank (as Spearman's correlation needs)."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    result = np.empty(len(x))
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            result[order[start:end]] = (start + end + 1) / 2
            start = end
    return result


class Pair(peft_hub.Task):
    name = "pair"
    description = "Sentence pairs: classification (accuracy, macro-F1) or regression (Pearson, Spearman)."
    Options = PairOptions
    input_fields = ("text", "text_pair")
    keep_full_precision = ["classifier"]
    peft_task_type = "SEQ_CLS"
    primary_metric = "accuracy"
    summary_metrics = ("accuracy", "f1", "pearson", "spearman")

    def primary_metric_for(self, options):
        return "pearson" if options.target == "regression" else "accuracy"

    def sample_data(self):
        return Path(__file__).parent / "samples" / "pair"

    def sample_inputs(self):
        return [{"text": "A man is playing a guitar.", "text_pair": "A person plays an instrument."},
                {"text": "The cat sleeps on the sofa.", "text_pair": "A dog is running in the park."}]

    def read_data(self, data, options):
        splits: dict[str, list[Example]] = {}
        for split, path in split_files(data).items():
            found = read_file(path, data.format, options, data.encoding)
            if set(found) != {"all"}:  # the file names its splits itself
                for name, examples in found.items():
                    splits.setdefault(name, []).extend(examples)
                continue
            if not found["all"]:
                if split == "train":
                    raise DataError(f"{path}: the train split holds no labelled pairs. Check the file, or the task option label_column.")
                log.warning("%s has no labels (hidden, as in GLUE's test files): the %s split is not scored", path, split)
                continue
            splits[split] = found["all"]
        if "train" not in splits:
            raise DataError(f"{data.path or data.train}: no training pairs (the split column names no train rows).")
        if options.target == "classification":
            scores = [e.label for e in splits["train"][:2000]]
            if len(set(scores)) > 20 and all(_is_number(s) for s in scores):
                raise DataError(f"{data.path or data.train}: the labels look like real-valued scores ({', '.join(scores[:3])} ...; "
                                f"{len(set(scores))} distinct values). Set task.options.target=regression.")
        return splits

    def labels(self, splits):
        if any(isinstance(e.label, float) for e in splits.get("train", [])[:1]):
            return []  # a regression: one output, no label names
        return label_set(splits)

    def _tokenize(self, tokenizer, texts, pairs, options):
        max_length = min(options.max_length, tokenizer.model_max_length)
        return tokenizer(texts, pairs, truncation="longest_first", max_length=max_length)

    def encode(self, examples, tokenizer, labels, options):
        label2id = {label: i for i, label in enumerate(labels)}
        enc = self._tokenize(tokenizer, [e.text for e in examples], [e.text_pair for e in examples], options)
        truncated = sum(len(ids) >= min(options.max_length, tokenizer.model_max_length) for ids in enc["input_ids"])
        if truncated:
            log.info("%d pair(s) truncated to max_length=%d sub-tokens", truncated, options.max_length)
        return [{**{k: enc[k][i] for k in enc.keys()}, "labels": float(e.label) if not labels else label2id[e.label]}
                for i, e in enumerate(examples)]

    def build_model(self, model_path, labels, **load_kwargs):
        from transformers import AutoModelForSequenceClassification

        if labels:
            return load_with_head(AutoModelForSequenceClassification, model_path, labels, **load_kwargs)
        return load_pretrained(AutoModelForSequenceClassification, model_path, num_labels=1, problem_type="regression", **load_kwargs)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def predictions(self, logits):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits[..., 0].float() if logits.shape[-1] == 1 else logits.argmax(dim=-1)

    def compute_metrics(self, evaluation):
        import numpy as np

        predictions = np.asarray(evaluation.predictions).reshape(-1)
        gold = np.asarray(evaluation.label_ids).reshape(-1)
        if not evaluation.labels:
            return {"pearson": pearson(predictions, gold), "spearman": pearson(ranks(predictions), ranks(gold)),
                    "mse": float(((predictions - gold) ** 2).mean())}
        return accuracy_macro_f1(predictions, gold, len(evaluation.labels))

    def predict(self, model, tokenizer, inputs, labels, options):
        chunks = [inputs[begin : begin + options.batch_size] for begin in range(0, len(inputs), options.batch_size)]
        collate = self.collator(tokenizer)

        def batch(chunk):
            enc = self._tokenize(tokenizer, [i["text"] for i in chunk], [i["text_pair"] for i in chunk], options)
            return collate([{k: enc[k][i] for k in enc.keys()} for i in range(len(chunk))])

        results = []
        for chunk, out in zip(chunks, model_outputs(model, map(batch, chunks))):
            for given, row in zip(chunk, out.logits.float()):
                scored = {"score": round(float(row[0]), 4)} if not labels else labelled(labels, row.softmax(-1))
                results.append({**given, **scored})
        return results

    def format_prediction(self, inputs, prediction):
        head = prediction.get("label", "score")
        return f"{head}\t{prediction['score']:.2f}\t{inputs['text']}  ||  {inputs['text_pair']}"


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


@peft_hub.hookimpl
def register_tasks(register):
    register(Pair())
