"""What a self-supervised pretraining objective is. Concrete objectives (``mlm``, ``wwm``) live in
plugins and register through :func:`peft_hub.hookspecs.register_objectives`.

The core reads and tokenizes the text into examples (:mod:`peft_hub.text`): fixed-size blocks that
pack documents together, or one example per document (``input_unit = "documents"``, e.g. for a
sentence-level objective). The objective builds the model with its pretraining head, the collator
that turns examples into training batches, and owns its held-out evaluation::

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
    #: What one training example is: ``"blocks"`` of ``data.block_size`` tokens packing documents
    #: together, or ``"documents"``: one document (a line, with ``data.line_by_line``) each, cut to
    #: the block size.
    input_unit: ClassVar[Literal["blocks", "documents"]] = "blocks"
    #: Key of :meth:`evaluate`'s result reported before/after training and shown by ``report``.
    primary_metric: ClassVar[str] = "loss"
    #: Whether a higher ``primary_metric`` is better.
    greater_is_better: ClassVar[bool] = False
    #: The method used when a pretrain recipe names none (None: the recipe must name one).
    default_method: ClassVar[str | None] = None

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
