"""The public plugin API: the built-in plugins (and the example package) use only names that
``peft_hub`` exports, exactly as a third-party package must; and the core names no component."""

from __future__ import annotations

import ast

import pytest

import peft_hub
from conftest import ROOT
from peft_hub import registry

PLUGIN_FILES = sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))
CORE_FILES = sorted((ROOT / "peft_hub").rglob("*.py"))


def _private_uses(tree: ast.AST) -> list[str]:
    """Imports of and attribute reads from ``peft_hub`` that are not in ``peft_hub.__all__``."""
    public, found = set(peft_hub.__all__), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "peft_hub":
            if node.module != "peft_hub":
                found.append(f"line {node.lineno}: from {node.module} import ...")
            else:
                found += [f"line {node.lineno}: peft_hub.{a.name}" for a in node.names if a.name not in public]
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith("peft_hub.")]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "peft_hub" \
                and node.attr not in public:
            found.append(f"line {node.lineno}: peft_hub.{node.attr}")
    return found


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_public_api(path):
    assert _private_uses(ast.parse(path.read_text(encoding="utf-8"))) == []


def test_the_check_catches_private_imports():
    tree = ast.parse("import peft_hub\nfrom peft_hub.train import x\nfrom peft_hub import Task, guard\nimport peft_hub.adapt\npeft_hub.registry.get('x')\n")
    assert _private_uses(tree) == ["line 2: from peft_hub.train import ...", "line 3: peft_hub.guard",
                                   "line 4: import peft_hub.adapt", "line 5: peft_hub.registry"]


def test_everything_exported_exists():
    missing = [name for name in peft_hub.__all__ if not hasattr(peft_hub, name)]
    assert missing == []


def test_the_core_never_branches_on_a_component_name():
    """No comparison with, or lookup by, the name of a registered method, task or objective in
    peft_hub/ (messages and examples in help texts may name them)."""
    names = set(registry.methods()) | set(registry.tasks()) | set(registry.objectives())
    found = []
    for path in CORE_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
            elif isinstance(node, ast.Subscript):
                operands = [node.slice]
            else:
                continue
            for operand in operands:
                values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                found += [f"{path.name}:{node.lineno} {v.value!r}" for v in values
                          if isinstance(v, ast.Constant) and v.value in names]
    assert found == []
