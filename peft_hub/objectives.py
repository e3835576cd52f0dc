"""What a self-supervised pretraining objective is. Concrete objectives (``mlm``, ``wwm``) live in
plugins and register through :func:`peft_hub.hookspecs.register_objectives`.

The core reads and tokenizes the text into units (:mod:`peft_hub.text`): fixed-size blocks that
pack documents together, one per document, or one per sentence (``input_unit``), and the objective
may turn them into its own examples (``build_examples``: sentence-order pairs from consecutive
sentences). An objective that trains on records rather than text (supervised SimCSE: NLI pairs)
reads them itself (``read_data``). The objective builds the model with its pretraining head, the
collator that turns examples into training batches, and owns its held-out evaluation::

    heldout = objective.heldout(blocks, tokenizer, options, seed)    # fixed once (e.g. masked)
    scores = objective.evaluate(model, heldout, tokenizer, options, batch_size)   # before and after
    scores[objective.primary_metric]                                 # summary, report, curves
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .heads import Head
from .options import Options

if TYPE_CHECKING:
    import torch


class Objective(Head):
    """A self-supervised objective for ``peft-hub pretrain``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: peft's ``TaskType`` for methods wrapping the model (None: peft's generic ``PeftModel``).
    peft_task_type: ClassVar[str | None] = None
    #: Whether blocks must carry ``word_ids`` (the word index of every token) for the collator.
    needs_word_ids: ClassVar[bool] = False
    #: What the core cuts text into: ``"blocks"`` of ``data.block_size`` tokens packing documents
    #: together, ``"documents"`` (one each, cut to the block size) or ``"sentences"`` (one each,
    #: with its ``text`` and ``document`` index; ``peft_hub.split_sentences``).
    input_unit: ClassVar[Literal["blocks", "documents", "sentences"]] = "blocks"
    #: Key of :meth:`evaluate`'s result reported before/after training and shown by ``report``.
    primary_metric: ClassVar[str] = "loss"
    #: Whether a higher ``primary_metric`` is better.
    greater_is_better: ClassVar[bool] = False
    #: The smallest training batch the objective works with (in-batch negatives need 2 or more).
    min_batch_size: ClassVar[int] = 1
    #: Commands the end-of-run summary suggests next; ``{out}`` is the output directory.
    next_steps: ClassVar[tuple[str, ...]] = ("peft-hub adapt --model {out} --method lora --task ner --data DIR",)
    #: The method used when a pretrain recipe names none (None: the recipe must name one).
    default_method: ClassVar[str | None] = None

    def primary_metric_for(self, options: Any) -> str:
        """The primary metric under these options (SimCSE: STS Spearman when given an STS file,
        else uniformity). Default: :attr:`primary_metric`."""
        return self.primary_metric

    def greater_is_better_for(self, options: Any) -> bool:
        """Whether a higher :meth:`primary_metric_for` is better. Default: :attr:`greater_is_better`."""
        return self.greater_is_better

    def read_data(self, data: Any, tokenizer: Any, options: Any) -> tuple[list[dict], list[dict]] | None:
        """For an objective that trains on records rather than text: (training examples, held-out
        examples) read from the recipe's ``data`` section. None (default): the core reads text."""
        return None

    def shapes_examples(self) -> bool:
        """Whether the objective reads its own records or builds its own examples from the units
        (derived from which of :meth:`read_data` / :meth:`build_examples` it overrides). Such an
        objective needs the whole corpus (no streaming); of combined objectives, one may."""
        own = type(self)
        return own.read_data is not Objective.read_data or own.build_examples is not Objective.build_examples

    def sentence_pooling(self, options: Any) -> str | None:
        """How the output model turns tokens into a sentence vector, recorded in ``run.json`` for
        ``peft-hub embed`` and ``evaluate --sts`` (``"mean"``, ``"cls"``, ``"pooler"``); None: no
        preference (mean)."""
        return None

    def build_examples(self, units: list[dict], tokenizer: Any, options: Any, seed: int, block_size: int) -> list[dict]:
        """Training (or held-out) examples from the tokenized units of :attr:`input_unit`, e.g.
        sentence pairs of up to ``block_size`` tokens from consecutive sentences. Default: the
        units themselves."""
        return units

    def build_model(self, model_path: str, **load_kwargs: Any) -> tuple[torch.nn.Module, list[str]]:
        """The model with its pretraining head, and the names of head weights that were newly
        initialised (empty when the checkpoint had the head)."""
        raise NotImplementedError

    def collator(self, tokenizer: Any, options: Any, seed: int | None = None) -> Any:
        """Turns a list of blocks (``input_ids``, maybe ``word_ids``) into a batch with labels."""
        raise NotImplementedError

    def heldout(self, blocks: list[dict], tokenizer: Any, options: Any, seed: int) -> list[dict]:
        """The held-out examples, fixed once so that scores before and after training compare like
        with like. Default: the collator's batch rows (with its ``labels``), drawn with ``seed``."""
        collate = self.collator(tokenizer, options, seed=seed)
        fixed = []
        for start in range(0, len(blocks), 64):
            chunk = blocks[start : start + 64]
            batch = collate(chunk)
            for row, block in enumerate(chunk):
                n = len(block["input_ids"])
                fixed.append({"input_ids": batch["input_ids"][row, :n].tolist(), "labels": batch["labels"][row, :n].tolist()})
        return fixed

    def evaluate(self, model: torch.nn.Module, heldout: list[dict], tokenizer: Any, options: Any, batch_size: int = 32) -> dict[str, float]:
        """Scores of ``model`` on the held-out examples; must hold :attr:`primary_metric`.
        Default: the model's mean loss, weighted by examples."""
        import torch
        from transformers import DataCollatorForTokenClassification

        pad = DataCollatorForTokenClassification(tokenizer)  # input_ids and labels, to the longest row
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(heldout), batch_size):
                batch = pad(heldout[start : start + batch_size])
                total += model(**{k: v.to(device) for k, v in batch.items()}).loss.item() * len(batch["input_ids"])
        model.train(was_training)
        return {"loss": total / max(1, len(heldout))}

    def prepare_training(self, model: torch.nn.Module, options: Any) -> Callable[[dict], dict] | None:
        """Called once with the model about to train (a method may have wrapped it). May return a
        function that rewrites every training and evaluation batch just before the forward pass,
        e.g. so that the head runs only where there are labels. None: batches go in as collated."""
        return None
