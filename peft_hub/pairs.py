"""Sentence-pair files: read by the ``pair`` task, by sentence-embedding objectives (supervised
SimCSE reads NLI pairs) and by the STS evaluation of embeddings, so every one of them accepts the
same layouts and refuses bad files with the same messages.

Layouts (quoting off: a ``"`` is part of the text, as in RTE and STS-B):

- TSV with a header (GLUE's RTE: ``index, sentence1, sentence2, label``; SICK: ``sentence_A,
  sentence_B, entailment_label, relatedness_score, ..., SemEval_set``). A split column (``split``,
  ``SemEval_set``) splits one file into train / validation (``TRIAL``) / test;
- TSV without a header: ``text<TAB>text_pair<TAB>label``, or the STS benchmark's layout (``genre,
  file, year, id, score, sentence1, sentence2``); other layouts name columns by 0-based index;
- CSV with a header, JSONL (``{"text": ..., "text_pair": ..., "label": ...}``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import SPLIT_NAMES, read_jsonl, read_lines
from .errors import DataError

TEXT_NAMES = ("sentence1", "sentence_a", "premise", "text_a", "question1", "text", "sentence")
PAIR_NAMES = ("sentence2", "sentence_b", "hypothesis", "text_b", "question2", "text_pair")
LABEL_NAMES = ("label", "gold_label", "entailment_label", "score", "relatedness_score", "similarity")
SPLIT_COLUMNS = ("split", "semeval_set")
SPLIT_VALUES = {**{w: s for s, words in SPLIT_NAMES.items() for w in words}, "trial": "validation"}
STSB_LAYOUT = (5, 6, 4)  # sentence1, sentence2, score columns of the STS benchmark's files
FORMATS = ("auto", "tsv", "csv", "jsonl")


@dataclass
class PairColumns:
    """Which columns hold what (None: found by name), and whether labels are scores. A plugin's
    options may carry these same fields and be passed instead."""

    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    label_column: str | int | None = None
    split_column: str | None = None
    target: str = "classification"  # or "regression": labels are real-valued scores


@dataclass
class PairExample:
    text: str
    text_pair: str
    label: str | float
    line: int


def _column(names: list[str], wanted: str | int | None, defaults: tuple[str, ...], option: str, where: str) -> int | None:
    """Index of the column an option names (or the first default name present); None if absent."""
    lowered = [n.strip().lower() for n in names]
    if isinstance(wanted, int):
        if not 0 <= wanted < len(names):
            raise DataError(f"{where}: {option}={wanted} names column {wanted}, but rows have {len(names)} columns (0-{len(names) - 1}).")
        return wanted
    if wanted is not None:
        if wanted.lower() not in lowered:
            raise DataError(f"{where}: {option}={wanted!r} names no column; the columns are {names}. Set {option} to one of them.")
        return lowered.index(wanted.lower())
    return next((lowered.index(d) for d in defaults if d in lowered), None)


def _label(value: str, columns: Any, where: str, prefix: str) -> str | float:
    if columns.target != "regression":
        return value.strip()
    try:
        score = float(value)
    except ValueError:
        raise DataError(f"{where}: the score {value!r} is not a number ({prefix}target=regression).") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: the score {value!r} is not a finite number.")
    return score


def _rows(header: list[str] | None, rows: list[tuple[int, list[str]]], columns: Any, where: str, prefix: str) -> dict[str, list[PairExample]]:
    """Examples per split from rows of cells (the split column decides; otherwise all are ``"all"``)."""
    width = len(header) if header else len(rows[0][1])
    names = header or [str(i) for i in range(width)]
    given = (columns.text_column, columns.text_pair_column, columns.label_column)
    if header is None and not any(isinstance(o, int) for o in given):
        layout = (0, 1, 2) if width == 3 else STSB_LAYOUT if width >= 7 else None
        if layout is None:
            raise DataError(f"{where}: a file without a header needs 3 columns (text, text_pair, label) or the STS benchmark's layout; "
                            f"it has {width}. Add a header line, or name columns by index: {prefix}text_column=0 ...")
        text, pair, label = layout
    else:
        text = _column(names, columns.text_column, TEXT_NAMES, f"{prefix}text_column", where)
        pair = _column(names, columns.text_pair_column, PAIR_NAMES, f"{prefix}text_pair_column", where)
        label = _column(names, columns.label_column, LABEL_NAMES, f"{prefix}label_column", where)
        for index, what in ((text, "text"), (pair, "text_pair")):
            if index is None:
                raise DataError(f"{where}: cannot tell which column holds the {what}; the columns are {names}. "
                                f"Set {prefix}{what}_column=NAME.")
    split = _column(names, columns.split_column, SPLIT_COLUMNS if header else (), f"{prefix}split_column", where)
    out: dict[str, list[PairExample]] = {}
    for number, cells in rows:
        at = f"{where}, line {number}"
        if len(cells) < width and not (header is None and width >= 7 and len(cells) >= 7):
            raise DataError(f"{at}: {len(cells)} tab-separated fields, expected {width}. A tab inside a text?")
        if label is None:
            value: str | float = ""
        elif not cells[label].strip():
            raise DataError(f"{at}: the label ({names[label]}) is empty.")
        else:
            value = _label(cells[label], columns, at, prefix)
        name = "all"
        if split is not None:
            name = SPLIT_VALUES.get(cells[split].strip().lower())
            if name is None:
                raise DataError(f"{at}: split {cells[split]!r} in column {names[split]} is none of "
                                f"{sorted(SPLIT_VALUES)}. Set {prefix}split_column, or split the file.")
        out.setdefault(name, []).append(PairExample(cells[text], cells[pair], value, number))
    if label is None:
        return {name: [] for name in out}  # no labels at all: nothing to train or score on
    return out


def read_pairs(path: str | Path, fmt: str = "auto", columns: Any = None, encoding: str = "utf-8",
               prefix: str = "task.options.") -> dict[str, list[PairExample]]:
    """The labelled pairs of one file, by split: ``{"all": [...]}``, or the splits a split column
    names. A file without any label column gives empty lists. ``columns`` is a
    :class:`PairColumns` (or options with the same fields); ``prefix`` is how messages name them."""
    path, columns = Path(path), columns or PairColumns()
    where = str(path)
    if fmt not in FORMATS:
        raise DataError(f"data.format {fmt!r} is not a format of sentence pairs. Use {', '.join(FORMATS)}.")
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix.lower(), "tsv")
    if fmt == "jsonl":
        objects = read_jsonl(path, encoding)
        if not objects:
            return {"all": []}
        keys = list(objects[0][1])
        return _rows(keys, [(n, [str(obj.get(k, "")) for k in keys]) for n, obj in objects], columns, where, prefix)
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
    named = {o.lower() for o in (columns.text_column, columns.text_pair_column, columns.label_column) if isinstance(o, str)}
    if set(first) & (known | named):
        return _rows([c.strip() for c in rows[0][1]], rows[1:], columns, where, prefix)
    return _rows(None, rows, columns, where, prefix)


def read_scored_pairs(path: str | Path, low: float = 0.0, high: float = 5.0, encoding: str = "utf-8",
                      prefix: str = "") -> list[PairExample]:
    """Pairs with similarity scores in ``[low, high]`` (an STS file: STS-B, SICK relatedness).
    A file with a split column gives its test rows (else all of them)."""
    columns = PairColumns(target="regression")
    if Path(path).suffix.lower() not in (".jsonl", ".json") and "relatedness_score" in read_lines(path, encoding)[0].lower():
        columns.label_column = "relatedness_score"  # SICK: the score, not the entailment label
    found = read_pairs(path, "auto", columns, encoding, prefix)
    pairs = found.get("test") or found.get("all") or [e for split in found.values() for e in split]
    if len(pairs) < 3:
        raise DataError(f"{path}: {len(pairs)} scored pairs; a correlation needs at least 3. Is it an STS file "
                        "(sentence1, sentence2, score)?")
    outside = [e for e in pairs if not low <= e.label <= high]
    if outside:
        raise DataError(f"{path}, line {outside[0].line}: score {outside[0].label} is outside [{low:g}, {high:g}] "
                        f"({len(outside)} such rows). STS scores run from {low:g} to {high:g}; rescale the file.")
    return pairs


def pearson(x: Any, y: Any) -> float:
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator else 0.0


def ranks(x: Any) -> Any:
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


def spearman(x: Any, y: Any) -> float:
    return pearson(ranks(x), ranks(y))
