"""The plugin contract: bodiless, typed pluggy hook specifications.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose names are the
hooks below. It is found through the ``peft_hub`` entry-point group::

    [project.entry-points.peft_hub]
    mymethod = "peft_hub_mymethod"

Every ``register_*`` hook receives a ``register`` callback owned by the core: the core validates
the name, rejects duplicates (naming both plugins) and records which plugin registered what.
A hook implementation may accept fewer arguments than the spec (pluggy's opt-in arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from .augment import Augmenter
    from .methods import Method
    from .objectives import Objective
    from .tasks import Task

PROJECT = "peft_hub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for hook implementations: ``@peft_hub.hookimpl def register_methods(register): ...``"""


# -- components --------------------------------------------------------------------------------


@hookspec
def register_methods(register: Callable[[Method], None]) -> None:
    """Register adapter methods (LoRA, ...).

    :param register: call ``register(method)`` once per :class:`peft_hub.Method` instance.
    """


@hookspec
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register task heads (NER, classification, ...).

    :param register: call ``register(task)`` once per :class:`peft_hub.Task` instance.
    """


@hookspec
def register_objectives(register: Callable[[Objective], None]) -> None:
    """Register self-supervised pretraining objectives (masked LM, whole-word masking, ...).

    :param register: call ``register(objective)`` once per :class:`peft_hub.Objective` instance.
    """


@hookspec
def register_augmenters(register: Callable[[Augmenter], None]) -> None:
    """Register data augmenters (token deletion, mention replacement, ...), applied on the fly to
    the training examples of the tasks they name.

    :param register: call ``register(augmenter)`` once per :class:`peft_hub.Augmenter` instance.
    """


@hookspec
def register_models(register: Callable[[str, Callable[[], str | Path], str], None]) -> None:
    """Register base-model aliases usable wherever a model is named (``--model minilm``).

    :param register: call ``register(alias, resolve, description)``; ``resolve()`` returns a
        local directory or a hub id and is only called when the alias is used.
    """


@hookspec
def register_recipes(register: Callable[[str, Path], None]) -> None:
    """Register recipe YAML files shipped by the plugin.

    :param register: call ``register(name, path)``, e.g. ``register("ner/minilm_lora", path)``.
    """


# -- command line ------------------------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``peft-hub`` command line.

    :param cli: the root click group; use ``@cli.command()`` or ``cli.add_command()``.
    """
