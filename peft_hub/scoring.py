"""Helpers for tasks that predict one label per input (classification, pairs, relations): the
label set of the splits, accuracy and macro-F1, and a prediction with its scores. Part of the
public plugin API (exported by ``peft_hub``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("peft_hub")


def label_set(splits: dict[str, list], label_of: Callable[[Any], str] = lambda example: example.label) -> list[str]:
    """The training split's labels, sorted, then (with a warning) those only dev/test have: the
    model cannot learn them, but they must have an output to be scored."""
    labels = sorted({label_of(e) for e in splits.get("train", [])})
    unseen = sorted({label_of(e) for name, examples in splits.items() if name != "train" for e in examples} - set(labels))
    if unseen:
        log.warning("Labels in dev/test but never in train (the model cannot learn them): %s", ", ".join(unseen))
    return labels + unseen


def accuracy_macro_f1(predictions: Any, gold: Any, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 (the mean F1 of the labels that occur in the gold or the predictions)."""
    import numpy as np

    predictions, gold = np.asarray(predictions).reshape(-1), np.asarray(gold).reshape(-1)
    f1s = []
    for k in range(num_labels):
        tp, fp = int(((predictions == k) & (gold == k)).sum()), int(((predictions == k) & (gold != k)).sum())
        fn = int(((predictions != k) & (gold == k)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float((predictions == gold).mean()) if gold.size else 0.0, "f1": float(np.mean(f1s)) if f1s else 0.0}


def labelled(labels: list[str], probabilities: Any) -> dict:
    """``{"label", "score", "scores"}`` for one row of class probabilities (4 decimals)."""
    best = int(probabilities.argmax())
    return {"label": labels[best], "score": round(float(probabilities[best]), 4),
            "scores": {label: round(float(p), 4) for label, p in zip(labels, probabilities)}}
