"""Multi-label text classification: any number of labels per text (GoEmotions' emotions, topic
tags). One sigmoid output per label, binary cross-entropy; a decision threshold tuned on dev (one
for all labels, or one per label) is kept in the run's task options and can be overridden when
predicting. Scores: micro-F1 (primary), macro-F1, per-label F1, subset accuracy (every label of
the text right).

Data, each split a file (or a directory of split files found by name):
- GoEmotions' layout: ``text<TAB>label ids<TAB>id`` (ids comma-joined, 0-based), with the names in a
  ``labels.txt`` beside the files (one per line);
- TSV or CSV with a text column and a labels column of names joined by ``,`` or ``;`` (header
  optional for TSV: ``text<TAB>a,b``);
- JSONL ``{"text": ..., "labels": [...]}``;
- CSV with a header ``text,<label>,<label>,...`` and one 0/1 column per label.
Written against the public task contract only, as a third-party task would be.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import peft_hub
from peft_hub import DataError, load_with_head, model_outputs, option, read_jsonl, read_lines, split_files

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.multilabel")
TEXT_NAMES = ("text", "sentence", "content", "comment", "document")
LABEL_NAMES = ("labels", "label", "tags", "categories", "emotions")
SEPARATORS = re.compile(r"\s*[,;]\s*")


@dataclass
class MultiLabelOptions(peft_hub.Options):
    text_column: str | None = option(None, "Column/key holding the text (default: text, sentence, comment ...).")
    label_column: str | None = option(None, "Column/key holding the joined labels (default: labels, label, tags ...).")
    max_length: int = option(128, "Most sub-tokens per text; longer texts are truncated (and counted).", low=8)
    batch_size: int = option(64, "Texts per forward pass in `predict`.", low=1)
    tune_threshold: Literal["global", "per_label", "none"] = option(
        "global", "Tune the decision threshold on dev (one for all labels, or one per label) and keep it in the run; none: use `threshold`.")
    threshold: float = option(0.5, "Probability from which a label is predicted (tuned on dev unless tune_threshold=none).", above=0, below=1)
    thresholds: list[float] | None = option(
        None, "One threshold per label, in label order (set by tune_threshold=per_label; overrides `threshold`).", above=0, below=1)


@dataclass
class Example:
    text: str
    labels: list[str]
    line: int


def _split_names(cell: str) -> list[str]:
    return [name for name in SEPARATORS.split(cell.strip()) if name]


def _label_names(directory: Path, encoding: str) -> list[str] | None:
    """The names of ``labels.txt`` beside the data (GoEmotions), or None."""
    path = directory / "labels.txt"
    return [line.strip() for line in read_lines(path, encoding) if line.strip()] if path.is_file() else None


def _pick(names: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, where: str) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise DataError(f"{where}: no {what} column {wanted!r}; columns are {names}. Set {what}_column to one of them.")
        return wanted
    return next((name for name in names if name.lower() in defaults), None)


def _from_rows(rows: list[tuple[int, dict]], options, where: str) -> list[Example]:
    """Rows with named columns: a labels column of joined names (or a JSON list), or 0/1 columns."""
    if not rows:
        return []
    names = list(rows[0][1])
    text_key = _pick(names, options.text_column, TEXT_NAMES, "text", where)
    if text_key is None:
        raise DataError(f"{where}: cannot tell which column holds the text; columns are {names}. Set task.options.text_column.")
    label_key = _pick(names, options.label_column, LABEL_NAMES, "label", where)
    out = []
    if label_key is None:  # one 0/1 column per label
        columns = [n for n in names if n != text_key]
        for number, row in rows:
            values = {n: str(row.get(n, "")).strip() for n in columns}
            bad = [n for n, v in values.items() if v not in ("0", "1")]
            if bad:
                raise DataError(f"{where}, line {number}: column {bad[0]!r} holds {values[bad[0]]!r}; a file without a labels column "
                                "needs one 0/1 column per label. Name the labels column with task.options.label_column.")
            out.append(Example(str(row[text_key]), [n for n in columns if values[n] == "1"], number))
        return out
    for number, row in rows:
        value = row.get(label_key)
        names_ = [str(v) for v in value] if isinstance(value, list) else _split_names(str(value or ""))
        if row.get(text_key) is None:
            raise DataError(f"{where}, line {number}: missing text.")
        out.append(Example(str(row[text_key]), names_, number))
    return out


def _read_tsv(lines: list[str], options, names: list[str] | None, where: str) -> list[Example]:
    rows = [(n, line.split("\t")) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        return []
    first = [c.strip() for c in rows[0][1]]
    if any(c.lower() in TEXT_NAMES + LABEL_NAMES for c in first) or options.text_column or options.label_column:
        return _from_rows([(n, dict(zip(first, cells))) for n, cells in rows[1:]], options, where)
    out = []
    for number, cells in rows:
        if len(cells) < 2:
            raise DataError(f"{where}, line {number}: expected text<TAB>labels (GoEmotions: text<TAB>ids<TAB>id), got one column.")
        text, cell = cells[0], cells[1].strip()
        found = _split_names(cell)
        if names is not None and all(part.isdigit() for part in found):  # GoEmotions: ids into labels.txt
            wrong = [part for part in found if int(part) >= len(names)]
            if wrong:
                raise DataError(f"{where}, line {number}: label id {wrong[0]} is past the {len(names)} names of labels.txt.")
            found = [names[int(part)] for part in found]
        out.append(Example(text, found, number))
    return out


def read_file(path: Path, fmt: str, options, encoding: str = "utf-8") -> list[Example]:
    where = str(path)
    if fmt not in ("auto", "tsv", "csv", "jsonl"):
        raise DataError(f"data.format {fmt!r} is not a format of the multilabel task. Use auto, tsv, csv or jsonl.")
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix.lower(), "tsv")
    if fmt == "jsonl":
        return _from_rows(read_jsonl(path, encoding), options, where)
    lines = read_lines(path, encoding)
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        return _from_rows([(i + 2, row) for i, row in enumerate(reader)], options, where)
    return _read_tsv(lines, options, _label_names(path.parent, encoding), where)


def _f1(tp, fp, fn):
    import numpy as np

    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def scores_at(probabilities, gold, thresholds) -> dict[str, float]:
    """Micro- and macro-F1, subset accuracy and per-label F1 of ``probabilities >= thresholds``."""

    predicted = probabilities >= thresholds
    gold = gold.astype(bool)
    tp, fp, fn = (predicted & gold).sum(0), (predicted & ~gold).sum(0), (~predicted & gold).sum(0)
    seen = (tp + fp + fn) > 0  # labels absent from gold and predictions count in neither average
    return {"micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
            "macro_f1": float(_f1(tp, fp, fn)[seen].mean()) if seen.any() else 0.0,
            "subset_accuracy": float((predicted == gold).all(1).mean()) if len(gold) else 0.0,
            "per_label": _f1(tp, fp, fn)}


GRID = [round(0.05 * i, 2) for i in range(1, 20)]  # 0.05 ... 0.95


class MultiLabel(peft_hub.Task):
    name = "multilabel"
    description = "Multi-label text classification (any number of labels per text); micro/macro-F1, threshold tuned on dev."
    Options = MultiLabelOptions
    keep_full_precision = ["classifier"]
    peft_task_type = "SEQ_CLS"
    sentence_embeddings = True
    primary_metric = "micro_f1"
    summary_metrics = ("micro_f1", "macro_f1", "subset_accuracy", "threshold")
    auto_class = "AutoModelForSequenceClassification"
    example_shape = "text"
    display = "labels"

    def sample_data(self):
        return Path(__file__).parent / "samples" / "multilabel"

    def sample_inputs(self):
        return [{"text": "what a lovely surprise, thank you"}, {"text": "this is awful and I am scared"}]

    def read_data(self, data, options):
        splits = {}
        for split, path in split_files(data).items():
            examples = read_file(path, data.format, options, data.encoding)
            if not examples:
                raise DataError(f"{path}: the {split} split holds no examples. Remove the file or fill it.")
            splits[split] = examples
        return splits

    def labels(self, splits, data=None):
        """The names of labels.txt when the data has one (in its order), else every label seen,
        sorted (dev/test-only labels last, as the model cannot learn them)."""
        folder = data and (data.path if data.path and Path(data.path).is_dir() else data.train and Path(data.train).parent)
        names = _label_names(Path(folder), data.encoding) if folder else None
        if names:
            return names
        seen = sorted({label for e in splits.get("train", []) for label in e.labels})
        unseen = sorted({label for name, examples in splits.items() if name != "train" for e in examples for label in e.labels}
                        - set(seen))
        if unseen:
            log.warning("Labels in dev/test but never in train (the model cannot learn them): %s", ", ".join(unseen))
        return seen + unseen

    def label_mask(self, feature):
        return 1  # one multi-hot target per example

    def encode(self, examples, tokenizer, labels, options):
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted({label for e in examples for label in e.labels} - set(index))
        if unknown:
            raise DataError(f"Labels the run does not know: {', '.join(unknown[:6])} (it knows {len(labels)}: "
                            f"{', '.join(labels[:6])} ...). Train on data with these labels.")
        max_length = min(options.max_length, tokenizer.model_max_length)
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
        truncated = sum(len(ids) >= max_length for ids in enc["input_ids"])
        if truncated:
            log.info("%d text(s) truncated to max_length=%d sub-tokens", truncated, max_length)
        features = []
        for i, example in enumerate(examples):
            target = [0.0] * len(labels)
            for label in example.labels:
                target[index[label]] = 1.0
            features.append({**{key: enc[key][i] for key in enc.keys()}, "labels": target})
        return features

    def build_model(self, model_path, labels, **load_kwargs):
        from transformers import AutoModelForSequenceClassification

        return load_with_head(AutoModelForSequenceClassification, model_path, labels,
                              problem_type="multi_label_classification", **load_kwargs)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def predictions(self, logits):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.float().sigmoid()

    def _thresholds(self, options, count):
        import numpy as np

        return np.asarray(options.thresholds if options.thresholds else [options.threshold] * count, dtype=float)

    def tune(self, evaluation):
        import numpy as np

        options = evaluation.options
        if options.tune_threshold == "none":
            return {}
        probabilities, gold = np.asarray(evaluation.predictions), np.asarray(evaluation.label_ids) > 0.5
        if options.tune_threshold == "global":
            best = max(GRID, key=lambda t: (scores_at(probabilities, gold, t)["micro_f1"], -abs(t - 0.5)))
            return {"threshold": best, "thresholds": None}
        grid = sorted(GRID, key=lambda t: abs(t - 0.5))  # ties go to the threshold nearest 0.5
        f1 = np.stack([scores_at(probabilities, gold, t)["per_label"] for t in grid])  # [threshold, label]
        return {"thresholds": [grid[i] for i in f1.argmax(0)]}

    def compute_metrics(self, evaluation):
        import numpy as np

        probabilities, gold = np.asarray(evaluation.predictions), np.asarray(evaluation.label_ids) > 0.5
        thresholds = self._thresholds(evaluation.options, gold.shape[1])
        found = scores_at(probabilities, gold, thresholds)
        scores = {k: v for k, v in found.items() if k != "per_label"}
        scores["threshold"] = float(thresholds.mean())
        scores.update({f"f1_{label}": float(f1) for label, f1 in zip(evaluation.labels, found["per_label"])})
        return scores

    def loading_arguments(self, labels):
        return f'num_labels={len(labels)}, problem_type="multi_label_classification"'

    def constant_predictions(self, evaluation):
        """Always the training data's most common label set (here: the split's), as probabilities."""
        import numpy as np

        gold = np.asarray(evaluation.label_ids) > 0.5
        if not len(gold):
            return None
        rows, counts = np.unique(gold, axis=0, return_counts=True)
        return np.repeat(rows[counts.argmax()][None, :].astype(float), len(gold), axis=0)

    def score_notes(self, scores):
        per_label = sorted(((k[3:], v) for k, v in scores.items() if k.startswith("f1_")), key=lambda x: -x[1])
        if not per_label:
            return []
        return ["F1 per label (best first): " + ", ".join(f"{label} {v:.2f}" for label, v in per_label)]

    def distillation_loss(self, student, teacher, temperature):
        """Each label is a yes/no of its own: binary cross-entropy against the teacher's softened
        sigmoids, scaled by T^2 as a softmax KL is."""
        import torch.nn.functional as F

        t = temperature
        return F.binary_cross_entropy_with_logits(student.float() / t, (teacher.float() / t).sigmoid()) * t * t

    def unlabeled_example(self, text, labels):
        return Example(text, [], 0)

    def without_labels(self, feature):
        return {**feature, "labels": [-100.0] * len(feature["labels"])}

    def supervised_loss(self, logits, labels):
        """Binary cross-entropy over the labelled rows only (unlabelled rows hold -100)."""
        import torch.nn.functional as F

        rows = labels[:, 0] != -100
        if not bool(rows.any()):
            return logits.new_zeros(())
        return F.binary_cross_entropy_with_logits(logits[rows].float(), labels[rows].float())

    def pseudo_label(self, model, tokenizer, examples, labels, options):
        """Every label decided confidently: the confidence is that of the least sure label
        (max(p, 1 - p)); balanced by the label set predicted."""
        predictions = self._probabilities(model, tokenizer, [e.text for e in examples], options)
        thresholds = self._thresholds(options, len(labels))
        out = []
        for example, row in zip(examples, predictions):
            chosen = [label for label, p, t in zip(labels, row, thresholds) if p >= t]
            confidence = float(min(max(p, 1 - p) for p in row))
            out.append((Example(example.text, chosen, example.line), confidence, ",".join(chosen) or "(none)"))
        return out

    def _probabilities(self, model, tokenizer, texts, options):
        chunks = [texts[begin : begin + options.batch_size] for begin in range(0, len(texts), options.batch_size)]
        collate = self.collator(tokenizer)

        def batch(chunk):
            enc = tokenizer(chunk, truncation=True, max_length=min(options.max_length, tokenizer.model_max_length))
            return collate([{k: enc[k][i] for k in enc.keys()} for i in range(len(chunk))])

        return [row for out in model_outputs(model, map(batch, chunks)) for row in out.logits.float().sigmoid().tolist()]

    def predict(self, model, tokenizer, inputs, labels, options):
        texts = [i["text"] for i in inputs]
        thresholds = self._thresholds(options, len(labels))
        out = []
        for text, row in zip(texts, self._probabilities(model, tokenizer, texts, options)):
            chosen = [(label, p) for label, p, t in zip(labels, row, thresholds) if p >= t]
            out.append({"text": text, "labels": [label for label, _ in sorted(chosen, key=lambda x: -x[1])],
                        "scores": {label: round(p, 4) for label, p in zip(labels, row)}})
        return out

    def format_prediction(self, inputs, prediction):
        shown = ", ".join(f"{label} {prediction['scores'][label]:.2f}" for label in prediction["labels"]) or "(no label)"
        return f"{shown}\t{inputs['text']}"


@peft_hub.hookimpl
def register_tasks(register):
    register(MultiLabel())
