"""What a task is. Concrete tasks (NER, classification, question answering ...) live in plugins
and register through :func:`peft_hub.hookspecs.register_tasks`.

The core drives a task in this order (see :mod:`peft_hub.adapt`)::

    splits = task.read_data(data_config, options)         # raw examples per split
    labels = task.labels(splits)                          # label names ([] for a regression)
    task.prepare_tokenizer(tokenizer, options)            # e.g. add entity-marker tokens
    features = task.encode(splits["train"], tokenizer, labels, options)
    model = task.build_model(model_path, labels, **load_kwargs)
    ... Trainer(data_collator=task.collator(tokenizer), ...)
    # each evaluation batch: task.predictions(logits); each evaluated split:
    task.compute_metrics(Evaluation(predictions, label_ids, labels, features, examples))
    task.predict(model, tokenizer, inputs, labels, options)   # inputs: dicts of input_fields

A task owns its whole shape: how many texts an example has (``input_fields``), what the model
outputs and how that becomes predictions (arg-max, start/end spans, a score), what its metric
needs (kept in the features it encodes: example ids, offsets ...), which metric selects the best
epoch (``primary_metric``, ``greater_is_better``) and which the summary shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .heads import Head
from .options import Options

if TYPE_CHECKING:
    import torch

    from .recipes import DataConfig

#: Raw examples per split: ``{"train": [...], "validation": [...], "test": [...]}``.
Splits = dict[str, list[Any]]


@dataclass
class Evaluation:
    """What a task's metric gets for one evaluated split."""

    #: :meth:`Task.predictions` of every feature, concatenated in order (numpy; rows padded
    #: with -100 where features differ in length)
    predictions: Any
    #: the features' labels as the collator batched them (numpy; a tuple for several label keys,
    #: e.g. QA's start and end positions)
    label_ids: Any
    #: the run's label names ([] for a regression)
    labels: list[str]
    #: the encoded features of the split, in order, with any extra keys :meth:`Task.encode` put there
    features: list[dict]
    #: the raw examples of the split, in order (what :meth:`Task.read_data` returned)
    examples: list
    #: the run's task options
    options: Any = None


class Task(Head):
    """A downstream task: its data, its head, its metric and its predictions."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: peft's ``TaskType`` name for this task, e.g. ``"TOKEN_CLS"``.
    peft_task_type: ClassVar[str]
    #: The texts an input is made of, in order: what ``predict`` takes (``peft-hub predict RUN
    #: Q C`` groups positional arguments by this many) and the keys of each input dict.
    input_fields: ClassVar[tuple[str, ...]] = ("text",)
    #: Key of :meth:`compute_metrics`' result that keeps the best epoch and that ``report`` shows.
    primary_metric: ClassVar[str] = "f1"
    #: Whether a higher ``primary_metric`` is better.
    greater_is_better: ClassVar[bool] = True
    #: Metrics the end-of-run summary shows, in order (default: the primary metric).
    summary_metrics: ClassVar[tuple[str, ...]] = ()
    #: Whether the trained encoder represents one text as a whole (a sequence classifier does; a
    #: tagger, a span extractor or a cross-encoder of pairs does not): ``peft-hub embed`` and
    #: ``evaluate --sts`` take runs of such tasks and refuse the others.
    sentence_embeddings: ClassVar[bool] = False

    def primary_metric_for(self, options: Any) -> str:
        """The primary metric of a run with these task options, for tasks whose options change
        what is measured (a pair task's regression: Pearson). Default: :attr:`primary_metric`."""
        return self.primary_metric

    def sample_data(self) -> Path:
        """A small built-in dataset used when no data is given (and by the test matrix)."""
        raise NotImplementedError

    def sample_inputs(self) -> list[dict[str, str]]:
        """A few inputs for ``predict`` (used by the test matrix), as dicts of :attr:`input_fields`."""
        raise NotImplementedError

    def read_data(self, data: DataConfig, options: Any) -> Splits:
        """Read the splits named by the recipe's ``data`` section."""
        raise NotImplementedError

    def labels(self, splits: Splits) -> list[str]:
        """The label names, from the training split ([] for a regression)."""
        raise NotImplementedError

    def unlabeled_example(self, text: str, labels: list[str]) -> Any:
        """An example of one unlabelled text, as :meth:`read_data` makes them, with placeholder
        labels (any of ``labels``; they are ignored): how distillation and self-training read
        unlabelled text. Default: not supported (raise NotImplementedError)."""
        raise NotImplementedError

    def pseudo_label(self, model: Any, tokenizer: Any, examples: list, labels: list[str], options: Any) -> list[tuple[Any, float, str | None]]:
        """Self-training: for each example (its labels ignored), ``(the example labelled with the
        model's predictions, a confidence in [0, 1], the class to balance by or None)``. The
        confidence decides which pseudo-labels are kept: for a tagger, its least confident word.
        Default: not supported (raise NotImplementedError)."""
        raise NotImplementedError

    def prepare_tokenizer(self, tokenizer: Any, options: Any) -> None:
        """Change the freshly loaded tokenizer before anything is encoded (e.g. add marker tokens).
        The tokenizer is saved with the run, so reloading needs nothing more. Default: nothing."""

    def encode(self, examples: list, tokenizer: Any, labels: list[str], options: Any) -> list[dict]:
        """Tokenize examples into model features (``input_ids``, ``labels``, ...). A feature may
        carry extra keys for the metric (example index, offsets); the collator drops them."""
        raise NotImplementedError

    def build_model(self, model_path: str, labels: list[str], **load_kwargs: Any) -> torch.nn.Module:
        """The model with its head for ``labels``; also loads a merged run's output (its head included)."""
        raise NotImplementedError

    def collator(self, tokenizer: Any) -> Any:
        """Pads a list of features into a batch of model inputs."""
        raise NotImplementedError

    def predictions(self, logits: Any) -> Any:
        """One evaluation batch's model outputs (a tensor, or a tuple of them) -> what
        :meth:`compute_metrics` gets, kept small (called on the device). Default: arg-max ids."""
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.argmax(dim=-1)

    def compute_metrics(self, evaluation: Evaluation) -> dict[str, float]:
        """Scores of one evaluated split; ``-100`` in ``label_ids`` marks ignored positions."""
        raise NotImplementedError

    def constant_predictions(self, evaluation: Evaluation) -> Any | None:
        """Predictions of a model that learned nothing, scored beside every evaluation as
        ``majority_<primary metric>`` by the collapse guard (:mod:`peft_hub.guard`). Default: the
        most common label id at every labelled position, for integer labels; None (no guard)
        otherwise, e.g. for a regression or for spans."""
        import numpy as np

        label_ids, predictions = evaluation.label_ids, np.asarray(evaluation.predictions)
        if isinstance(label_ids, tuple) or not np.issubdtype(np.asarray(label_ids).dtype, np.integer) \
                or not np.issubdtype(predictions.dtype, np.integer):
            return None
        seen = np.asarray(label_ids)[np.asarray(label_ids) != -100]
        if seen.size == 0:
            return None
        values, counts = np.unique(seen, return_counts=True)
        return np.full(predictions.shape, values[counts.argmax()], dtype=predictions.dtype)

    def predict(self, model: Any, tokenizer: Any, inputs: list[dict[str, str]], labels: list[str], options: Any) -> list:
        """JSON-able predictions, one per input (a dict of :attr:`input_fields`)."""
        raise NotImplementedError

    def format_prediction(self, inputs: dict[str, str], prediction: Any) -> str:
        """A human-readable line (or lines) for one prediction."""
        return str(prediction)

    def score_notes(self, scores: dict[str, float]) -> list[str]:
        """Extra summary lines for one split's scores (e.g. F1 per entity type). Default: none."""
        return []
