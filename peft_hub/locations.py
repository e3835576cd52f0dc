"""Where finished runs and hub entries are, and which base model a run was trained on: what
loading a run needs from the hub, below the hub itself (:mod:`peft_hub.hub` adds, lists, exports
and imports entries).

An entry is ``$PEFT_HUB_HOME/adapters/<name>/`` (default ``~/.cache/peft-hub``); every command that
takes a run directory also takes an entry's name (:func:`locate`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import PeftHubError
from .rundir import sha256_file

NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")  # \Z: "$" would take a trailing newline
NAME_RULE = "1-64 characters: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"


class HubError(PeftHubError):
    """A hub name, entry or archive that cannot be used."""


def home() -> Path:
    """Where the hub lives: ``$PEFT_HUB_HOME``, else ``$XDG_CACHE_HOME/peft-hub`` (~/.cache/peft-hub)."""
    if os.environ.get("PEFT_HUB_HOME"):
        return Path(os.environ["PEFT_HUB_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "peft-hub"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise HubError(f"{str(name)[:80]!r} is not a valid hub name ({NAME_RULE}). Choose another --name.")
    return name


def entry_dir(name: str) -> Path:
    return home() / "adapters" / check_name(name)


def locate(source: str | Path) -> Path:
    """A run directory for ``source``: an existing path as it is, else the hub entry of that name.
    Anything else comes back unchanged, for the caller's own "no finished run" message."""
    path = Path(source)
    if path.exists() or not NAME_RE.match(str(source)):
        return path
    entry = entry_dir(str(source))
    return entry if (entry / "hub.json").exists() else path


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubError(f"{path} is damaged ({type(exc).__name__}). Remove the entry (peft-hub hub rm) and add it again.") from None
    if not isinstance(data, dict):
        raise HubError(f"{path} is damaged (not a JSON object). Remove the entry and add it again.")
    return data


# -- the base model's fingerprint ----------------------------------------------------------------

_FINGERPRINTS: dict[tuple[str, float], str] = {}


def fingerprint(model_dir: str | Path) -> str:
    """A digest of a base model's weight files (``sha256:`` + 16 hex digits): the same model in
    another folder or on another machine has the same fingerprint."""
    directory = Path(model_dir)
    weights = sorted(p for p in directory.glob("*") if p.suffix in {".safetensors", ".bin"})
    if not weights or not (directory / "config.json").is_file():
        raise HubError(f"{directory} holds no model weights and config.json: its fingerprint cannot be taken.")
    key = (str(directory.resolve()), max(p.stat().st_mtime for p in weights))
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for path in weights:
            digest.update(path.name.encode() + b"\0" + sha256_file(path).encode())
        _FINGERPRINTS[key] = "sha256:" + digest.hexdigest()[:16]
    return _FINGERPRINTS[key]


def _recorded_fingerprint(run: Any) -> str | None:
    """The base fingerprint a hub entry recorded when it was added (None for a plain run)."""
    meta = run.directory / "hub.json"
    return read_json(meta).get("base_fingerprint") if meta.exists() else None


def trained_fingerprint(run: Any) -> str:
    """The fingerprint of the base an ``adapt`` run (:class:`peft_hub.finished.RunRecord`) was trained
    on: as its hub entry recorded it, else of its base model as found on this machine."""
    return _recorded_fingerprint(run) or fingerprint(run.base)


def check_base(run: Any, base: str) -> None:
    """Refuse to load a hub entry on a base model other than the one it was trained on (a plain
    run directory recorded nothing to compare with)."""
    recorded = _recorded_fingerprint(run)
    found = fingerprint(base) if recorded else None
    if recorded and recorded != found:
        name = run.directory.name
        raise HubError(f"{name} was trained on a base model with fingerprint {recorded}, but the base found "
                       f"here ({base}) has fingerprint {found}. Install the base model it was trained on "
                       f"(see its card: peft-hub hub show {name}).")
