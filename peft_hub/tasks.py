"""What a task is. Concrete tasks (NER, classification, ...) live in plugins and register
through :func:`peft_hub.hookspecs.register_tasks`.

The core drives a task in this order (see :mod:`peft_hub.adapt`)::

    splits = task.read_data(data_config, options)         # raw examples per split
    labels = task.labels(splits)                          # sorted label names
    features = task.encode(splits["train"], tokenizer, labels, options)
    model = task.build_model(model_path, labels, **load_kwargs)
    ... Trainer(data_collator=task.collator(tokenizer), compute_metrics=task.compute_metrics ...)
    task.predict(model, tokenizer, texts, labels, options)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .options import Options

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .recipes import DataConfig

#: Raw examples per split: ``{"train": [...], "validation": [...], "test": [...]}``.
Splits = dict[str, list[Any]]


class Task:
    """A downstream task: its data, its head, its metric and its predictions."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: peft's ``TaskType`` name for this task, e.g. ``"TOKEN_CLS"``.
    peft_task_type: ClassVar[str]
    #: Module names never quantized: the head, which trains in full precision.
    keep_full_precision: ClassVar[list[str]] = []
    #: Key of :meth:`compute_metrics`' result used to keep the best epoch (higher is better).
    primary_metric: ClassVar[str] = "f1"

    def sample_data(self) -> Path:
        """A small built-in dataset used when no data is given."""
        raise NotImplementedError

    def read_data(self, data: DataConfig, options: Any) -> Splits:
        """Read the splits named by the recipe's ``data`` section."""
        raise NotImplementedError

    def labels(self, splits: Splits) -> list[str]:
        """The label names, from the training split."""
        raise NotImplementedError

    def encode(self, examples: list, tokenizer: Any, labels: list[str], options: Any) -> list[dict]:
        """Tokenize examples into model features (``input_ids``, ``labels``, ...)."""
        raise NotImplementedError

    def build_model(self, model_path: str, labels: list[str], **load_kwargs: Any) -> torch.nn.Module:
        """A transformers model with a fresh head for ``labels``."""
        raise NotImplementedError

    def head_modules(self, model: torch.nn.Module) -> list[str]:
        """Names of the head modules: trained and saved by every method.

        Default: the model's direct children with parameters, except the encoder itself
        (``classifier`` for ``BertForTokenClassification``)."""
        base = getattr(model, "base_model_prefix", None)
        return [name for name, child in model.named_children() if name != base and any(True for _ in child.parameters())]

    def collator(self, tokenizer: Any) -> Any:
        """Pads a list of features into a batch."""
        raise NotImplementedError

    def compute_metrics(self, predictions: np.ndarray, label_ids: np.ndarray, labels: list[str]) -> dict:
        """Scores from arg-max predictions; ``-100`` in ``label_ids`` marks ignored positions."""
        raise NotImplementedError

    def predict(self, model: Any, tokenizer: Any, texts: list[str], labels: list[str], options: Any) -> list:
        """JSON-able predictions, one per text."""
        raise NotImplementedError

    def format_prediction(self, text: str, prediction: Any) -> str:
        """A human-readable line (or lines) for one prediction."""
        return str(prediction)
