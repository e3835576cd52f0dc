"""Sentence pairs: classification (entailment, paraphrase) or regression (similarity scores).

Both texts go through the encoder together (``[CLS] a [SEP] b [SEP]``); the head reads the pair.
Classification is scored with accuracy and macro-F1, regression (``target: regression``) with
Pearson and Spearman correlation.

Data: a directory of split files or single files in any layout ``peft_hub.read_pairs`` reads
(RTE's and SICK's TSV with a header, STS-B's header-less TSV, CSV, JSONL; a split column such as
SICK's ``SemEval_set`` splits one file).

A split file without any label column (GLUE's test files hide their labels) is skipped with a note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import peft_hub
from peft_hub import (
    DataError,
    PairExample,
    accuracy_macro_f1,
    label_set,
    labelled,
    load_pretrained,
    load_with_head,
    model_outputs,
    option,
    pearson,
    read_pairs,
    spearman,
    split_files,
)

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.pair")


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


class Pair(peft_hub.Task):
    name = "pair"
    description = "Sentence pairs: classification (accuracy, macro-F1) or regression (Pearson, Spearman)."
    Options = PairOptions
    input_fields = ("text", "text_pair")
    keep_full_precision = ["classifier"]
    peft_task_type = "SEQ_CLS"
    auto_class = "AutoModelForSequenceClassification"
    example_shape = "pair"
    display = "label"  # a regression: {"score"}
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
        splits: dict[str, list[PairExample]] = {}
        for split, path in split_files(data).items():
            found = read_pairs(path, data.format, options, data.encoding)
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

    def teacher_refusal(self, options):
        if options.target == "regression":
            return "a regression predicts one score per pair, with no distribution to distill (task.options.target=classification has one)"
        return None

    def labels(self, splits, data=None):
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
            return {"pearson": pearson(predictions, gold), "spearman": spearman(predictions, gold),
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
