"""What an adapter method is. Concrete methods live in plugins and register through
:func:`peft_hub.hookspecs.register_methods`.

A method either returns a ``peft.PeftConfig`` (:class:`PeftMethod`: LoRA, IA3, prefix tuning ...)
or implements :meth:`Method.apply`, :meth:`Method.save` and :meth:`Method.load` itself, for
methods peft lacks (peft's method list is a closed enum).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .options import Options

if TYPE_CHECKING:
    import torch
    from peft import PeftConfig

    from .tasks import Task


class Method:
    """An adapter method: wraps a task model so that only a few parameters train."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: Learning rate used when the recipe leaves ``training.learning_rate`` unset.
    default_learning_rate: ClassVar[float] = 5e-5

    def apply(self, model: torch.nn.Module, options: Any, task: Task) -> torch.nn.Module:
        """Return ``model`` wrapped for training; the task head must stay trainable."""
        raise NotImplementedError

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        """Write the trained method weights *and the task head* (safetensors) to ``directory``."""
        raise NotImplementedError

    def load(self, model: torch.nn.Module, directory: Path, options: Any, task: Task) -> torch.nn.Module:
        """Return the freshly built base ``model`` with the weights saved by :meth:`save`."""
        raise NotImplementedError


class PeftMethod(Method):
    """A method that peft implements: subclasses only build the ``PeftConfig``."""

    def peft_config(self, options: Any, task: Task, model: torch.nn.Module) -> PeftConfig:
        raise NotImplementedError

    def apply(self, model, options, task):
        from peft import get_peft_model

        config = self.peft_config(options, task, model)
        # The head is created fresh for the task: train it and save it with the adapter.
        config.modules_to_save = sorted(set(config.modules_to_save or []) | set(task.head_modules(model)))
        return get_peft_model(model, config)

    def save(self, model, directory):
        model.save_pretrained(str(directory), safe_serialization=True)

    def load(self, model, directory, options, task):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(directory), is_trainable=False)
