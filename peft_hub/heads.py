"""The head protocol shared by tasks and objectives: which modules are the head (they start fresh,
train with every method and are saved with the run) and which stay out of 8-bit/4-bit loading.

A head is never taken from a checkpoint: :func:`peft_hub.models.reset_heads` re-initialises any
head weights that the base model's directory holds (a pretraining objective's head, another
task's head of the same name and size), whatever their name or size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch


class Head:
    """Mixed into :class:`peft_hub.Task` and :class:`peft_hub.Objective`."""

    #: Module names never quantized: the head, which trains in full precision.
    keep_full_precision: ClassVar[list[str]] = []

    def head_modules(self, model: torch.nn.Module) -> list[str]:
        """Names of the head modules: trained and saved by every method.

        Default: the model's direct children with parameters, except the encoder itself
        (``classifier`` for ``BertForTokenClassification``)."""
        base = getattr(model, "base_model_prefix", None)
        return [name for name, child in model.named_children() if name != base and any(True for _ in child.parameters())]
