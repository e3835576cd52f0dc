"""Run directories, shared by ``adapt`` and ``pretrain``: opened once (refusing to clobber a
finished run), written atomically, and marked complete by ``run.json`` written last.
In a multi-process run only rank 0 touches the directory."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__, recipes
from .errors import RunDirError

Echo = Callable[[str], None]


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def prepare(path: Path, overwrite: bool, resume: bool = False) -> None:
    if resume:
        if (path / "run.json").exists():
            raise RunDirError(f"{path} holds a finished run: there is nothing to resume.")
        if not (path / "checkpoints").is_dir():
            raise RunDirError(f"{path} has no checkpoints to resume from. Run without --resume.")
        return
    if (path / "run.json").exists():
        if not overwrite:
            raise RunDirError(
                f"{path} already holds a finished run. Choose another --output, or pass --overwrite "
                "(output.overwrite=true) to replace it."
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"Cannot write to the output directory {path}: {exc.strerror or exc}. Choose another --output.") from None


def start(output: recipes.OutputConfig, default_name: str, echo: Echo) -> tuple[Path, Echo, bool]:
    """(run directory, echo that is silent on non-zero ranks, whether this is rank 0)."""
    from .train import is_main_process

    main = is_main_process()
    echo = echo if main else (lambda message: None)
    out = Path(output.dir or time.strftime(f"runs/{default_name}-%Y%m%d-%H%M%S"))
    echo(f"Output: {out}")
    if main:
        prepare(out, output.overwrite, output.resume)
    return out, echo, main


def finish(out: Path, resolved: recipes.Resolved, metrics: dict, info: dict, curves_metric: str) -> None:
    """Write the resolved recipe, metrics and ``curves.png`` (training loss and the dev
    ``curves_metric`` by step), then ``run.json`` (the run is complete)."""
    from .report import curves_png

    (out / "recipe.yaml").write_text(
        f"# Resolved recipe of this run; rerun with: peft-hub run {out / 'recipe.yaml'} output.overwrite=true\n"
        + recipes.dump(resolved),
        encoding="utf-8",
    )
    write_json(out / "metrics.json", metrics)
    curves_png(metrics.get("history", []), out / "curves.png", curves_metric)
    write_json(out / "run.json", {"complete": True, "kind": resolved.kind, **info, "peft_hub_version": __version__})
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
