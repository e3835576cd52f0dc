"""What a task is. Concrete tasks (NER, classification, question answering ...) live in plugins
and register through :func:`peft_hub.hookspecs.register_tasks`.

The core drives a task in this order (see :mod:`peft_hub.adapt`)::

    splits = task.read_data(data_config, options)         # raw examples per split
    labels = task.labels(splits, data_config)             # label names ([] for a regression)
    prepare_tokenizer(task, tokenizer, options, splits["train"])   # e.g. add entity-marker tokens
    features = task.encode(splits["train"], tokenizer, labels, options)
    model = build_model(task, model_path, labels, options, tokenizer, **load_kwargs)
    ... Trainer(data_collator=task.collator(tokenizer), ...)
    # each evaluation batch: task.predictions(logits); each evaluated split:
    task.compute_metrics(Evaluation(predictions, label_ids, labels, features, examples))
    task.tune(evaluation of dev) -> options learnt on dev (a decision threshold), kept in the run
    task.predict(model, tokenizer, inputs, labels, options)   # inputs: dicts of input_fields

A task owns its whole shape, and nothing outside it guesses at its labels: which positions of a
feature are labelled (``label_mask``), what a feature without labels is (``without_labels``), how
a teacher's soft targets are learnt (``distillation_loss``) or why they cannot be
(``teacher_refusal``), how confident a pseudo-label is (``pseudo_label``), how a split is scored
when transformers' loop cannot concatenate its predictions (``evaluate_split``), how the hub card
loads the model (``auto_class``, ``loading_arguments``) and how the page shows a prediction
(``display``). Besides that: how many texts an example has (``input_fields``), what the model
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
    #: The transformers class the hub card's loading snippet uses (``AutoModel``: the task's head
    #: is no transformers class; the card then says to load it with the task).
    auto_class: ClassVar[str] = "AutoModel"
    #: How the page (``peft-hub serve``) shows a prediction: ``entities`` (``{"entities": [{"start",
    #: "end", "type"}]}``, offsets in code points), ``label`` (``{"label", "score", "scores"}``),
    #: ``labels`` (``{"labels": [...], "scores"}``), ``answer`` (``{"answer", "score"}``),
    #: ``score`` (``{"score"}``), ``generated`` (``{"generated"}``: a generated text); anything else: the JSON.
    display: ClassVar[str] = "json"
    #: What an example is, for augmenters (:attr:`peft_hub.Augmenter.shapes`): ``text`` (a dataclass
    #: with a ``text`` field and labels that a changed text keeps), ``tokens`` (``tokens`` and IOB2
    #: ``tags`` of the same length), ``pair`` (``text`` and ``text_pair``); None: no augmenter applies.
    example_shape: ClassVar[str | None] = None
    #: Whether every token of the input gets a label of its own (a tagger), rather than the whole
    #: input (a classifier) or a span of it (QA). A method may pick its default rate by it
    #: (:meth:`peft_hub.Method.default_rate`: LoRA's is 2e-3 for taggers, 1e-3 otherwise).
    token_labels: ClassVar[bool] = False
    #: Whether the trained encoder represents one text as a whole (a sequence classifier does; a
    #: tagger, a span extractor or a cross-encoder of pairs does not): ``peft-hub embed`` and
    #: ``evaluate --sts`` take runs of such tasks and refuse the others.
    sentence_embeddings: ClassVar[bool] = False

    #: Whether the task's model is an encoder-decoder (generation): a method must accept
    #: ``Method.refusal("encoder-decoder", options)``, checked when the recipe is validated.
    encoder_decoder: ClassVar[bool] = False

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

    def labels(self, splits: Splits, data: DataConfig | None = None) -> list[str]:
        """The label names, in model output order ([] for a regression): from the training split,
        or from what ``data`` (the recipe's data section, when known) names beside it (a
        ``labels.txt``). Called on subsets too (``{"train": examples}``) to see which labels they hold."""
        raise NotImplementedError

    # -- the label shape: what the core asks instead of guessing -------------------------------------

    def label_mask(self, feature: dict) -> list[int] | int:
        """Where a feature is labelled: a 0/1 per position (a token task: 1 where ``labels`` is not
        -100) or one 0/1 for the whole example; a teacher's soft targets go there. Default: per
        position when ``labels`` is a list."""
        labels = feature["labels"]
        return [int(x != -100) for x in labels] if isinstance(labels, list) else int(labels != -100)

    def without_labels(self, feature: dict) -> dict:
        """The feature with its labels ignored (unlabelled text learnt from a teacher alone).
        Default: -100 at every position, or for the example."""
        labels = feature["labels"]
        return {**feature, "labels": [-100] * len(labels) if isinstance(labels, list) else -100}

    def supervised_loss(self, logits: Any, labels: Any) -> Any:
        """The labels' loss of a batch mixing labelled features and features :meth:`without_labels`
        (distillation over unlabelled text), for a task whose model's own loss cannot skip the
        latter. Not overridden: the model's own loss (which ignores -100) is used."""
        raise NotImplementedError

    def teacher_refusal(self, options: Any) -> str | None:
        """Why this task (with these options) cannot learn from a teacher's soft targets, or None
        when it can: asked when the recipe is validated, before anything is read or written."""
        return None

    def distillation_loss(self, student: Any, teacher: Any, temperature: float) -> Any:
        """The soft-target loss of the labelled positions' logits (``[N, labels]`` tensors).
        Default: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over N."""
        import torch.nn.functional as F

        t = temperature
        return F.kl_div(F.log_softmax(student.float() / t, dim=-1), F.softmax(teacher.float() / t, dim=-1),
                        reduction="batchmean") * t * t

    def tune(self, evaluation: Evaluation) -> dict[str, Any]:
        """Task options learnt on the dev split (e.g. a decision threshold), as ``{option: value}``:
        the core scores dev with them, keeps those of the best checkpoint in the run's recipe, and
        scores test and predicts with them. Default: nothing to tune."""
        return {}

    def evaluate_split(self, model: Any, tokenizer: Any, features: list[dict], examples: list, labels: list[str],
                       options: Any) -> dict[str, float] | None:
        """Scores of one split computed by the task itself, for predictions that transformers'
        loop cannot concatenate (generated texts of any length). Default: None, the loop's
        :meth:`predictions` and :meth:`compute_metrics` are used."""
        return None

    def evaluation_cap(self, options: Any) -> int | None:
        """At most this many dev features and examples (the first ones) are scored at each evaluation
        during training, for a task whose scoring is slow (generation); dev is scored whole at the
        end. Default: None, all of them."""
        return None

    def loading_arguments(self, labels: list[str]) -> str:
        """The keyword arguments of ``auto_class.from_pretrained`` in the hub card's snippet."""
        return f"num_labels={len(labels) or 1}"

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
        """Change the freshly loaded tokenizer before anything is encoded (e.g. add marker tokens,
        or attach a tokenizer of the outputs with :func:`peft_hub.set_target_tokenizer`). The
        tokenizer is saved with the run, so reloading needs nothing more. A task that learns from
        the training data here declares ``train=None`` after ``options``: the core then passes the
        training examples. Default: nothing."""

    def encode(self, examples: list, tokenizer: Any, labels: list[str], options: Any) -> list[dict]:
        """Tokenize examples into model features (``input_ids``, ``labels``, ...). A feature may
        carry extra keys for the metric (example index, offsets); the collator drops them."""
        raise NotImplementedError

    def build_model(self, model_path: str, labels: list[str], **load_kwargs: Any) -> torch.nn.Module:
        """The model with its head for ``labels``; also loads a merged run's output (its head included).
        A task whose model's shape depends on its options declares ``options=None`` after ``labels``,
        one whose shape depends on the run's tokenizer ``tokenizer=None`` (a generation task's
        decoder sized for a target tokenizer): the core then passes them."""
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
        most common label id at every labelled position, for integer labels, in the predictions'
        own form: ids, or (where :meth:`predictions` gives a score per label, such as NER's
        log-probabilities) scores that put that label first; None (no guard) otherwise, e.g. for a
        regression or for spans."""
        import numpy as np

        label_ids, predictions = evaluation.label_ids, np.asarray(evaluation.predictions)
        if isinstance(label_ids, tuple) or not np.issubdtype(np.asarray(label_ids).dtype, np.integer):
            return None
        label_ids = np.asarray(label_ids)
        scores = predictions.ndim == label_ids.ndim + 1
        if not scores and not np.issubdtype(predictions.dtype, np.integer):
            return None
        seen = label_ids[label_ids != -100]
        if seen.size == 0:
            return None
        values, counts = np.unique(seen, return_counts=True)
        majority = values[counts.argmax()]
        if scores:
            return np.broadcast_to(np.where(np.arange(predictions.shape[-1]) == majority, 0.0, -30.0),
                                   predictions.shape).astype(predictions.dtype)
        return np.full(predictions.shape, majority, dtype=predictions.dtype)

    def predict(self, model: Any, tokenizer: Any, inputs: list[dict[str, str]], labels: list[str], options: Any) -> list:
        """JSON-able predictions, one per input (a dict of :attr:`input_fields`)."""
        raise NotImplementedError

    def format_prediction(self, inputs: dict[str, str], prediction: Any) -> str:
        """A human-readable line (or lines) for one prediction."""
        return str(prediction)

    def score_notes(self, scores: dict[str, float]) -> list[str]:
        """Extra summary lines for one split's scores (e.g. F1 per entity type). Default: none."""
        return []


def _declared(method: Any, **optional: Any) -> dict[str, Any]:
    """Of the ``optional`` arguments, those ``method`` names (pluggy's rule: an implementation takes
    the arguments it names) and that are given."""
    import inspect

    names = inspect.signature(method).parameters
    return {name: value for name, value in optional.items() if value is not None and name in names}


def build_model(task: Task, model_path: str, labels: list[str], options: Any = None, tokenizer: Any = None,
                **load_kwargs: Any) -> Any:
    """``task.build_model``, given the run's task ``options`` and ``tokenizer`` where it declares them."""
    return task.build_model(model_path, labels, **_declared(task.build_model, options=options, tokenizer=tokenizer),
                            **load_kwargs)


def prepare_tokenizer(task: Task, tokenizer: Any, options: Any, train: list | None = None) -> None:
    """``task.prepare_tokenizer``, given the training examples where it declares ``train``."""
    task.prepare_tokenizer(tokenizer, options, **_declared(task.prepare_tokenizer, train=train))
