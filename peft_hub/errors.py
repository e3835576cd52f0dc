"""Errors raised by peft-hub. Each message names the bad value and how to fix it.

Library code raises these; only the command line (``peft_hub/cli/app.py``) turns them into messages and exit codes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def first_line(exc: BaseException, skip: int = 0, limit: int = 300) -> str:
    """The first non-blank line of ``exc``'s message after ``skip`` lines (its type's name if none),
    at most ``limit`` characters: what a message quotes of a library's multi-line error."""
    lines = [line.strip() for line in str(exc).splitlines()[skip:] if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


class PeftHubError(Exception):
    """Base class: a problem the user can fix; its message is shown as is."""


class UnknownNameError(PeftHubError, KeyError):
    """A method, task, model alias or recipe name that nobody registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], hint: str = ""):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        close = difflib.get_close_matches(name, self.valid, n=1, cutoff=0.5)
        msg = f"Unknown {kind} {name!r}."
        if close:
            msg += f" Did you mean {close[0]!r}?"
        msg += f" Valid {kind}s: {', '.join(self.valid) or '(none registered)'}."
        if hint:
            msg += " " + hint
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return self.args[0]


class DuplicateNameError(PeftHubError):
    """Two plugins registered the same name for the same kind of component."""


class PluginError(PeftHubError):
    """A plugin broke the contract (bad name, wrong type, missing attribute)."""


class RecipeError(PeftHubError):
    """A recipe (file, flags or overrides) is invalid; lists every problem at once."""

    def __init__(self, errors: list[str] | str, source: str = "recipe"):
        self.errors = [errors] if isinstance(errors, str) else list(errors)  # one message is one error
        self.source = source
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{source} has {len(self.errors)} error(s):\n{lines}")


class DataError(PeftHubError):
    """Input data that cannot be read: says which file, which line, and the fix."""


class ModelError(PeftHubError):
    """A base model or tokenizer that cannot be loaded."""


class RunDirError(PeftHubError):
    """An output or run directory that is missing, incomplete or of another kind."""
