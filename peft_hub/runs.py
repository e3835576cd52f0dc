"""Running a validated recipe: one stage (``adapt`` or ``pretrain``), or a pipeline whose stages
run in order, a later one taking an earlier one's output directory as its model. The command
line only composes the recipe and prints what each stage returns. (The skeleton the stages share
is :mod:`peft_hub.stage`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .recipes import Pipeline, Resolved
from .rundir import Echo


def run_stage(resolved: Resolved, *, quiet: bool = False, echo: Echo = print) -> tuple[Path, dict]:
    """Run one adapt or pretrain recipe; returns its output directory and metrics."""
    from . import adapt, pretrain
    from .ranks import wait_for_other_processes

    if resolved.kind == "pretrain":
        out, metrics = pretrain.run(resolved, quiet=quiet, echo=echo)
    elif resolved.recipe.self_train.unlabeled:  # rounds of adapt runs; the last round is the result
        from . import selftrain

        out, metrics = selftrain.run(resolved, quiet=quiet, echo=echo)[-1]
    else:
        trained = adapt.run(resolved, quiet=quiet, echo=echo)
        out, metrics = trained.directory, trained.metrics
    wait_for_other_processes()  # rank 0 has written everything the next stage or the caller reads
    return out, metrics


def run(resolved: Resolved | Pipeline, *, quiet: bool = False, echo: Echo = print,
        announce: Callable[[str], Any] = print) -> Iterator[tuple[Resolved, Path, dict]]:
    """Run a recipe or every stage of a pipeline, yielding ``(stage, output directory, metrics)``
    as each finishes (so a caller can report a stage before the next one starts)."""
    from .ranks import end_processes

    if not isinstance(resolved, Pipeline):
        yield (resolved, *run_stage(resolved, quiet=quiet, echo=echo))
        end_processes()
        return
    outputs: dict[str, str] = {}
    for index, (name, _) in enumerate(resolved.stages):
        stage = resolved.resolved_stage(index, outputs)
        announce(f"== stage {name} ({stage.kind}) ==")
        out, metrics = run_stage(stage, quiet=quiet, echo=echo)
        outputs[name] = str(out)
        yield stage, out, metrics
    end_processes()
