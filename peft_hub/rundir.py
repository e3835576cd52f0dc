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

import yaml

from . import recipes
from .version import __version__
from .errors import RunDirError

Echo = Callable[[str], None]


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


#: What a run writes at the top of its directory (adapt and pretrain; a pretrain output also holds
#: the model and tokenizer files that ``save_pretrained`` writes, listed in its ``run.json``).
RUN_ENTRIES = {"adapter", "tokenizer", "labels.json", "recipe.yaml", "metrics.json", "curves.png", "tensorboard",
               "run.json", "checkpoints", "evaluate", "method", "wandb", "mlruns"}


def _foreign(path: Path) -> list[str]:
    """Entries of ``path`` that no run wrote (by the manifest in its run.json, else by name)."""
    written = set(RUN_ENTRIES)
    try:
        written |= set(json.loads((path / "run.json").read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError, AttributeError):
        pass
    return sorted(entry.name for entry in path.iterdir() if entry.name not in written and not entry.name.endswith(".tmp"))


def prepare(path: Path, overwrite: bool, resume: bool = False) -> None:
    """Check that ``path`` can take this run. A folder holding anything a run did not write is
    never mixed into nor deleted; ``--overwrite`` removes only what the previous run wrote. A
    folder that does not exist yet is created only when training starts, so a run that fails
    before then leaves nothing behind."""
    if resume:
        if (path / "run.json").exists():
            raise RunDirError(f"{path} holds a finished run: there is nothing to resume.")
        if not (path / "checkpoints").is_dir():
            raise RunDirError(f"{path} has no checkpoints to resume from. Run without --resume.")
        return
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--output {path} is a file, not a directory. Choose another --output.")
    if path.is_dir() and any(path.iterdir()):
        foreign = _foreign(path)
        if foreign:
            raise RunDirError(
                f"{path} holds files that no peft-hub run wrote ({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); "
                "a run never mixes into or deletes them. Choose another --output, or move them away."
            )
        if not overwrite:
            what = ("already holds a finished run" if (path / "run.json").exists() else
                    "holds an interrupted run (pass --resume to continue it)" if (path / "checkpoints").is_dir() else
                    "holds what is left of a run that did not finish")
            raise RunDirError(f"{path} {what}. Choose another --output, or pass --overwrite (output.overwrite=true) to replace it.")
        for entry in path.iterdir():  # only what a run wrote: checked above
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
        if created:
            path.rmdir()  # made again when training writes its first file
    except OSError as exc:
        raise RunDirError(f"Cannot write to the output directory {path}: {exc.strerror or exc}. Choose another --output.") from None


def default_dir(name: str) -> Path:
    """``runs/<name>-<date>-<time>``: the run directory when --output is not given. All processes of
    one run must agree on it, so the time comes from ``PEFT_HUB_RUN_STAMP`` where whatever started
    them set it; a run of several processes started otherwise must name its --output."""
    from .ranks import RUN_STAMP

    stamp = os.environ.get(RUN_STAMP)
    if not stamp:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RunDirError("A run of several processes needs --output (output.dir): each process would name its "
                              "own directory from its clock. Give the same --output to every process (on every node).")
        stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(f"runs/{name}-{stamp}")


def start(output: recipes.OutputConfig, default_name: str, echo: Echo) -> tuple[Path, Echo, bool]:
    """(run directory, echo that is silent on non-zero ranks, whether this is rank 0)."""
    from .ranks import is_main_process

    main = is_main_process()
    echo = echo if main else (lambda message: None)
    out = Path(output.dir) if output.dir else default_dir(default_name)
    echo(f"Output: {out}")
    if main:
        prepare(out, output.overwrite, output.resume)
    return out, echo, main


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(directory: Path) -> dict[str, str]:
    """sha256 of every weight file (``*.safetensors``) under ``directory`` (its resumable
    ``checkpoints/`` aside: they go once the run is complete), by path relative to it."""
    return {path.relative_to(directory).as_posix(): sha256_file(path)
            for path in sorted(p for p in directory.rglob("*.safetensors") if "checkpoints" not in p.relative_to(directory).parts)}


def read_run_file(directory: Path, name: str, parse: Callable[[str], Any] = lambda text: text) -> Any:
    """A file of a finished run, parsed; a missing or damaged one is named, with what to do."""
    path = directory / name
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        problem = f"is damaged ({type(exc).__name__}: {str(exc)[:120]})"
    raise RunDirError(f"{path} {problem}. Restore it from a copy of the run, or run it again "
                      f"(peft-hub run {directory / 'recipe.yaml'} output.overwrite=true).")


def verify_weights(directory: Path, recorded: dict[str, str]) -> None:
    """Compare the weight files with the sha256 recorded when the run was saved."""
    found = checksums(directory)
    for name, digest in recorded.items():
        if name not in found:
            raise RunDirError(f"{directory / name} is missing. Restore it from a copy of the run, or run it again.")
        if found[name] != digest:
            raise RunDirError(f"{directory / name} is damaged: its sha256 is not the one recorded when the run was saved "
                              "(truncated or changed). Restore it from a copy of the run, or run it again.")


def finish(out: Path, resolved: recipes.Resolved, metrics: dict, info: dict, curves_metric: str) -> None:
    """Write the resolved recipe, metrics and ``curves.png`` (training loss and the dev
    ``curves_metric`` by step), then ``run.json`` (the run is complete)."""
    from .plots import curves_png

    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(
        f"# Resolved recipe of this run; rerun with: peft-hub run {out / 'recipe.yaml'} output.overwrite=true\n"
        + recipes.dump(resolved),
        encoding="utf-8",
    )
    write_json(out / "metrics.json", metrics)
    curves_png(metrics.get("history", []), out / "curves.png", curves_metric)
    files = {entry.name for entry in out.iterdir()} - {"checkpoints"} | {"run.json"}  # the manifest: what --overwrite may remove
    write_json(out / "run.json", {"complete": True, "kind": resolved.kind, **info, "peft_hub_version": __version__,
                                  "files": sorted(files), "sha256": checksums(out)})
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
