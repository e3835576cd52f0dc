"""What a self-supervised pretraining objective is. Concrete objectives (``mlm``, ``wwm``) live in
plugins and register through :func:`peft_hub.hookspecs.register_objectives`.

The core reads and tokenizes the text and groups it into blocks (:mod:`peft_hub.text`); the
objective builds the model with its pretraining head and the collator that turns blocks into
training batches (masking, labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

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

    def build_model(self, model_path: str, **load_kwargs: Any) -> tuple[torch.nn.Module, list[str]]:
        """The model with its pretraining head, and the names of head weights that were newly
        initialised (empty when the checkpoint had the head)."""
        raise NotImplementedError

    def collator(self, tokenizer: Any, options: Any, seed: int | None = None) -> Any:
        """Turns a list of blocks (``input_ids``, maybe ``word_ids``) into a batch with labels."""
        raise NotImplementedError

    def prepare_training(self, model: torch.nn.Module, options: Any) -> Callable[[dict], dict] | None:
        """Called once with the model about to train (a method may have wrapped it). May return a
        function that rewrites every training and evaluation batch just before the forward pass,
        e.g. so that the head runs only where there are labels. None: batches go in as collated."""
        return None
