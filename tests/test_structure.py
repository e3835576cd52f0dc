"""The core's import structure: no import cycle among the modules of ``peft_hub/`` (imports inside
functions count, as do ``importlib.import_module`` and ``__import__`` of peft_hub modules; imports
under ``if TYPE_CHECKING:`` do not), and every import goes down the layers of README's
"Architecture": cli -> hub and serving -> flows -> training and data -> contracts."""

from __future__ import annotations

import ast
import subprocess
import sys
import time

import pytest

from conftest import ROOT

PACKAGE = ROOT / "peft_hub"

#: Every module of peft_hub/ by layer, lowest first. A module may import its own layer and those
#: below; a new module must be placed here (the test says so).
LAYERS: dict[str, set[str]] = {
    "contracts": {"errors", "version", "anatomy", "options", "progress", "guard", "scoring", "heads", "hookspecs", "methods", "tasks",
                  "objectives", "augment", "combined", "registry", "schema", "recipes", "features", "ranks", "batching",
                  "fast"},
    "training and data": {"data", "pairs", "text", "models", "embeddings", "train", "distill", "plots", "rundir",
                          "locations", "finished", "stage"},
    "flows": {"adapt", "pretrain", "selftrain", "runs", "ray_engine", "report", "summary"},
    "hub and serving": {"hub", "merging", "serving", "server"},
    "cli": {"cli", "cli.app", "cli.running", "cli.using", "cli.listing", "cli.hub", "__main__"},
}
#: The public plugin API re-exports names of the lower layers; no core module imports it.
FACADE = "__init__"


def _modules() -> dict[str, str]:
    """Dotted name inside peft_hub (``cli.app``, ``adapt``; ``__init__`` for the package) -> source."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path.read_text(encoding="utf-8")
    return found


class _Imports(ast.NodeVisitor):
    """Every peft_hub module a module imports, wherever the import is (TYPE_CHECKING aside)."""

    def __init__(self, name: str, is_package: bool, known: set[str]):
        self.name, self.is_package, self.known, self.found = name, is_package, known, set()

    def _add(self, dotted: str) -> None:  # dotted: inside peft_hub, "" for the package itself
        while dotted and dotted not in self.known:
            dotted = dotted.rpartition(".")[0]
        target = dotted or FACADE
        if target != self.name:
            self.found.add(target)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "peft_hub" or alias.name.startswith("peft_hub."):
                self._add(alias.name.partition(".")[2])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            here = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
            if self.name == FACADE:
                here = []
            base = here[: len(here) - (node.level - 1)] + ([node.module] if node.module else [])
            base_name = ".".join(p for p in base if p)
        elif node.module and (node.module == "peft_hub" or node.module.startswith("peft_hub.")):
            base_name = node.module.partition(".")[2]
        else:
            return
        for alias in node.names:  # `from . import adapt` imports the module peft_hub.adapt
            full = f"{base_name}.{alias.name}" if base_name else alias.name
            self._add(full if full in self.known else base_name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and node.args[0].value.startswith("peft_hub"):
            self._add(node.args[0].value.partition(".")[2])
        self.generic_visit(node)


def _graph(sources: dict[str, str]) -> dict[str, set[str]]:
    known = set(sources)
    graph = {}
    for name, source in sources.items():
        is_package = name == FACADE or (PACKAGE / name.replace(".", "/") / "__init__.py").exists()
        visitor = _Imports(name, is_package, known)
        visitor.visit(ast.parse(source))
        graph[name] = visitor.found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_the_core():
    assert _cycles(_graph(_modules())) == []


def test_the_check_sees_imports_in_functions_and_importlib():
    sources = {
        FACADE: "from .a import x\n",
        "a": "def f():\n    from . import b\n",
        "b": "import importlib\ndef g():\n    importlib.import_module('peft_hub.c')\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import y\n"
             "def h():\n    __import__('peft_hub.a')\n",
        "d": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n",
    }
    graph = _graph(sources)
    assert graph["c"] == {"a"} and graph["d"] == set()
    assert _cycles(graph) == [["a", "b", "c"]]


def test_every_import_goes_down_the_layers():
    layer_of = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
    names = list(LAYERS)
    graph = _graph(_modules())
    unplaced = sorted(set(graph) - set(layer_of) - {FACADE})
    assert unplaced == [], f"place these modules in a layer of tests/test_structure.py: {unplaced}"
    wrong = []
    for module, imports in graph.items():
        for target in imports:
            if target == FACADE and module != "__main__":
                wrong.append(f"{module} imports the public API facade (import from the module that defines the name)")
            elif module != FACADE and target != FACADE and layer_of[target] > layer_of[module]:
                wrong.append(f"{module} ({names[layer_of[module]]}) imports {target} ({names[layer_of[target]]})")
    assert wrong == []


def test_help_is_fast_and_loads_no_heavy_library():
    code = ("import sys, time; t = time.perf_counter(); from peft_hub.cli import cli; import peft_hub; "
            "print(time.perf_counter() - t, any(m in sys.modules for m in ('torch', 'transformers', 'peft')))")
    seconds, heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert heavy == "False"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "peft_hub", "--help"], capture_output=True, check=True)
    print(f"import {float(seconds):.2f} s, --help {time.perf_counter() - start:.2f} s")  # shown with -s; not asserted


@pytest.mark.parametrize("module", sorted(set(_modules()) - {"__main__"}))
def test_every_module_imports_alone(module):
    """Each module imports in a fresh interpreter by itself (no hidden order dependence)."""
    dotted = "peft_hub" if module == FACADE else f"peft_hub.{module}"
    result = subprocess.run([sys.executable, "-c", f"import {dotted}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
