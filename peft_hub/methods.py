"""What an adapter method is. Concrete methods live in plugins and register through
:func:`peft_hub.hookspecs.register_methods`.

A method either returns a ``peft.PeftConfig`` (:class:`PeftMethod`: LoRA, IA3, prefix tuning ...)
or implements :meth:`Method.apply`, :meth:`Method.save` and :meth:`Method.load` itself, for
methods peft lacks (peft's method list is a closed enum).

A method may also take part in training (``adapt`` calls these in this order)::

    model = method.apply(model, options, task)
    method.prepare(model, options, batches)                 # a pass before training (default: none)
    Trainer(callbacks=method.callbacks(model, options))     # see each step and the total steps
    optimizer = method.optimizer(model, options, rate, weight_decay)   # its own groups (default: None)
    method.save_checkpoint(model, dir) / method.load_checkpoint(model, dir)   # every checkpoint,
                                                            # the best-checkpoint reload and resume
    method.save(model, run / "adapter")                     # the finished run
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import PeftHubError, RunDirError
from .options import Options

#: The file of a checkpoint's trained parameters (:meth:`Method.save_checkpoint`).
CHECKPOINT_FILE = "model.safetensors"

if TYPE_CHECKING:
    import torch
    from peft import PeftConfig

    from .tasks import Task


class Method:
    """An adapter method: wraps a task model so that only a few parameters train."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: Learning rate used when the recipe leaves ``training.learning_rate`` unset (unless
    #: :meth:`default_rate` says otherwise for the task).
    default_learning_rate: ClassVar[float] = 5e-5

    def default_rate(self, task: Task | None) -> float:
        """The peak learning rate of a run whose recipe sets none, for ``task`` (None when
        pretraining). Default: :attr:`default_learning_rate`. A method whose best rate depends on
        what the task labels (e.g. every token, :attr:`Task.token_labels`) says so here."""
        return self.default_learning_rate

    def apply(self, model: torch.nn.Module, options: Any, task: Task) -> torch.nn.Module:
        """Return ``model`` wrapped for training; the task head must stay trainable."""
        raise NotImplementedError

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        """Write the trained method weights *and the task head* (safetensors) to ``directory``."""
        raise NotImplementedError

    def load(self, model: torch.nn.Module, directory: Path, options: Any, task: Task) -> torch.nn.Module:
        """Return the freshly built base ``model`` with the weights saved by :meth:`save`."""
        raise NotImplementedError

    # -- taking part in training (all optional) ---------------------------------------------------

    def prepare(self, model: torch.nn.Module, options: Any, batches: Iterator[dict]) -> None:
        """A pass before training, after :meth:`apply`: e.g. an initialisation from the weights
        or from activations (EVA, PiSSA, LoftQ-style). ``batches`` yields collated training
        batches (shuffled with the run's seed, on the model's device) lazily: take as many as
        needed. Default: nothing."""

    def callbacks(self, model: torch.nn.Module, options: Any) -> list:
        """``transformers.TrainerCallback`` instances added to the run's Trainer; they see every
        step (``state.global_step``) and the total (``state.max_steps``), and get ``model=`` in
        their keyword arguments. Default: none."""
        return []

    def optimizer(self, model: torch.nn.Module, options: Any, learning_rate: float, weight_decay: float) -> Any:
        """The optimizer (e.g. with parameter groups at rates of their own), or None for the
        Trainer's AdamW. The task head then gets its own rate in groups of its own, and the
        schedule scales every group alike. Default: None."""
        return None

    def save_checkpoint(self, model: torch.nn.Module, directory: Path) -> None:
        """Write what training changed (exactly: a resumed run continues from it) to a checkpoint
        ``directory``. Default: every parameter that trains, as safetensors."""
        save_trainable(model, directory / CHECKPOINT_FILE, self.name)

    def load_checkpoint(self, model: torch.nn.Module, directory: Path) -> None:
        """Put what :meth:`save_checkpoint` wrote back into the live ``model`` (the best-checkpoint
        reload at the end of training, and ``--resume``). Default: the saved parameters, by name."""
        load_trainable(model, directory / CHECKPOINT_FILE, self.name,
                       "Was it written with other method options? Run without --resume (or with a new --output).")

    #: Whether the method trains on an 8-bit/4-bit base (it must leave the base weights frozen).
    quantizable: ClassVar[bool] = True

    #: Whether the method adapts an encoder-decoder (a generation task's model) as well as an encoder.
    encoder_decoder: ClassVar[bool] = True

    #: Whether peft runs rows of different adapters of this method in one forward pass (its
    #: per-row ``adapter_names``): ``peft-hub serve`` shares one base between such adapters.
    mixed_batches: ClassVar[bool] = False

    #: peft's weighted-adapter combinations (``add_weighted_adapter``) that join trained adapters
    #: of this method into one (``peft-hub merge --adapters``); empty: they cannot be combined.
    combinations: ClassVar[tuple[str, ...]] = ()

    #: Why :meth:`merge` is impossible for this method (None: it can merge).
    cannot_merge: ClassVar[str | None] = "this method does not implement merging"

    def merge(self, model: torch.nn.Module) -> torch.nn.Module:
        """A plain transformers model with the method folded into its weights."""
        raise PeftHubError(f"Method {self.name!r} cannot be merged: {self.cannot_merge}.")

    # -- what it supports -------------------------------------------------------------------------

    def refusal(self, capability: str, options: Any) -> str | None:
        """Why this method, *with these options*, cannot do ``capability``; None when it can.
        ``"merge"`` (fold into the weights), ``"mixed_batches"`` (rows of several adapters in one
        serving pass), ``"quantized"`` (train on an 8-bit/4-bit base), ``"encoder-decoder"``. Default: from the class
        attributes :attr:`cannot_merge`, :attr:`mixed_batches` and :attr:`quantizable`; override
        when an option changes the answer (LoRA's DoRA cannot serve mixed batches). ``"encoder-decoder"``
        (adapt a generation task's encoder-decoder): from :attr:`encoder_decoder`."""
        if capability == "merge":
            return self.cannot_merge
        if capability == "mixed_batches":
            return None if self.mixed_batches else "its runs cannot share a forward pass with other adapters"
        if capability == "quantized":
            return None if self.quantizable else "it updates the base weights"
        if capability == "encoder-decoder":
            return None if self.encoder_decoder else "it adapts encoder models only"
        raise ValueError(f"unknown capability {capability!r}")

    def model_refusal(self, config: Any, options: Any) -> str | None:
        """Why this method cannot adapt a model of this ``transformers`` config (its family); None
        when it can. Asked before any data is read. Default: None (methods that find their places
        with :func:`peft_hub.target_modules` refuse unreadable families when applied)."""
        return None


class PeftMethod(Method):
    """A method that peft implements: subclasses only build the ``PeftConfig``."""

    cannot_merge = None

    def peft_config(self, options: Any, task: Task, model: torch.nn.Module) -> PeftConfig:
        raise NotImplementedError

    def apply(self, model, options, task):
        from peft import get_peft_model

        config = self.peft_config(options, task, model)
        heads = task.head_modules(model)
        # The head is created fresh for the task: train it fully and save it with the adapter ...
        config.modules_to_save = sorted(set(config.modules_to_save or []) | set(heads))
        if hasattr(config, "exclude_modules"):  # ... and keep the method's own layers out of it
            inside = {n for n, _ in model.named_modules() if any(n == h or n.startswith(h + ".") for h in heads)}
            config.exclude_modules = set(config.exclude_modules or []) | inside
        given = getattr(config, "target_modules", None)  # (prompt methods have none)
        model = get_peft_model(model, config)
        if isinstance(given, (list, set)):
            # peft shortens a long list to the shortest suffixes that pick the same modules in *this*
            # model (``dense`` where a token model has no pooler); saved so, the adapter would reach
            # other modules of another model of the same base (serve's shared encoder has the pooler)
            model.peft_config["default"].target_modules = set(given)
        return model

    def save(self, model, directory):
        model.save_pretrained(str(directory), safe_serialization=True)

    def load(self, model, directory, options, task):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(directory), is_trainable=False)

    def merge(self, model):
        if self.cannot_merge:
            return super().merge(model)
        from peft.utils import ModulesToSaveWrapper

        # the trained head copies first: peft's unloading takes a head of several modules (ModernBERT's
        # dense + norm) for a tuner layer and fails on it
        for name, module in [(n, m) for n, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)]:
            parent, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(parent), attribute, module.modules_to_save[module.active_adapter])
        return model.merge_and_unload()

    def targets(self, model: torch.nn.Module, task: Task, options: Any, default: tuple[str, ...] | None = None) -> list[str]:
        """The full names of the modules to adapt from the options ``target_modules`` and
        ``layers_to_transform`` (see :func:`peft_hub.target_modules`)."""
        from .anatomy import target_modules

        return target_modules(model, task.head_modules(model), options.target_modules,
                              getattr(options, "layers_to_transform", None), *([default] if default else []))


def train_only(model: torch.nn.Module, trainable: Callable[[str], bool]) -> None:
    """Freeze every parameter whose name ``trainable(name)`` rejects; unfreeze the others."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trainable(name))


def train_head(model: torch.nn.Module, task: Task) -> None:
    """Unfreeze the task's head modules (they start fresh, so every method trains them)."""
    for name in task.head_modules(model):
        model.get_submodule(name).requires_grad_(True)


class StateDictMethod(Method):
    """An in-house method: :meth:`apply` changes the model in place and leaves only what trains
    with ``requires_grad``; the trained state is exactly those parameters, saved as safetensors
    and loaded back after :meth:`apply` on a fresh model."""

    weights_file: ClassVar[str] = "method_model.safetensors"

    def save(self, model, directory):
        save_trainable(model, directory / self.weights_file, self.name)

    def load(self, model, directory, options, task):
        if not (directory / self.weights_file).exists():  # said before the model is changed
            raise RunDirError(f"{directory} has no {self.weights_file}: it was not saved by the {self.name!r} method.")
        model = self.apply(model, options, task)
        load_trainable(model, directory / self.weights_file, self.name, "Was the run trained on another base model?")
        return model


def save_trainable(model: torch.nn.Module, path: Path, method: str | None = None) -> None:
    """Every parameter of ``model`` that trains, by name, as one safetensors file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}
    save_file(state, str(path), metadata={"format": "pt", **({"peft_hub_method": method} if method else {})})


def load_trainable(model: torch.nn.Module, path: Path, method: str, hint: str) -> None:
    """Copy what :func:`save_trainable` wrote into ``model``'s trainable parameters, refusing a
    file whose names are not exactly those (``hint`` says what to do)."""
    import torch
    from safetensors.torch import load_file

    if not path.exists():
        raise RunDirError(f"{path.parent} holds no {path.name}: it was not written by the {method!r} method. {hint}")
    state = load_file(str(path))
    parameters = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(state) != set(parameters):
        missing, extra = sorted(set(parameters) - set(state)), sorted(set(state) - set(parameters))
        raise RunDirError(f"{path} does not match the model: missing {missing[:3]}, unexpected {extra[:3]}. {hint}")
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value.to(parameters[name].device, parameters[name].dtype))
