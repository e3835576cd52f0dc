"""The README's two commands are the ones CI runs, and its examples name real things."""

from __future__ import annotations

import re

from conftest import ROOT


def _commands(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)]


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    setup, tests = _commands(readme)[:2]
    assert setup in ci.splitlines()
    assert tests in ci.splitlines()
