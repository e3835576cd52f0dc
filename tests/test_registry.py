"""Plugin discovery, registration with provenance, duplicates, unknown names, broken plugins."""

from __future__ import annotations

import importlib.metadata
import json
import types

import pytest

import peft_hub
from peft_hub import registry
from peft_hub.errors import DuplicateNameError, UnknownNameError


@pytest.fixture
def fresh_registry(monkeypatch):
    """Reload plugins from a controlled set of entry points; restore the real ones after."""
    real = registry._entry_points()

    def load_with(extra):
        monkeypatch.setattr(registry, "_entry_points", lambda: real + extra)
        registry.reset()
        registry.load_plugins()

    yield load_with
    monkeypatch.undo()
    registry.reset()
    registry.load_plugins()


class FakeDist:
    def __init__(self, name, version="9.9"):
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    """Quacks like importlib.metadata.EntryPoint (pytest's DummyEntryPoint pattern)."""

    group = registry.ENTRY_POINT_GROUP

    def __init__(self, name, loader, dist="peft-hub-fake"):
        self.name, self._loader, self.dist = name, loader, FakeDist(dist)

    def load(self):
        return self._loader()


def _method_plugin(method_name):
    class FakeMethod(peft_hub.PeftMethod):
        name = method_name
        description = "a test method"

    module = types.ModuleType(f"peft_hub_{method_name.replace('-', '_')}")

    module.PEFT_HUB_API = peft_hub.PLUGIN_API

    @peft_hub.hookimpl
    def register_methods(register):
        register(FakeMethod())

    module.register_methods = register_methods
    return module


def test_builtins_come_from_entry_points():
    names = {ep.name for ep in importlib.metadata.entry_points(group="peft_hub")}
    assert {"lora", "ner", "classify", "minilm", "builtin-recipes"} <= names
    assert registry.methods()["lora"].distribution == "peft-hub"
    assert registry.tasks()["ner"].plugin == "ner"


def test_third_party_distribution_is_discovered(fresh_registry):
    fresh_registry([FakeEntryPoint("fancy", lambda: _method_plugin("fancy-lora"), dist="peft-hub-fancy")])
    entry = registry.methods()["fancy-lora"]
    assert entry.plugin == "fancy" and entry.distribution == "peft-hub-fancy"
    report = registry.plugins_report()
    row = next(r for r in report["plugins"] if r["name"] == "fancy")
    assert row["distribution"] == "peft-hub-fancy" and row["version"] == "9.9"
    assert row["hooks"] == ["register_methods"] and row["registered"] == {"methods": ["fancy-lora"]}


def test_duplicate_name_names_both_plugins(fresh_registry, cli_runner):
    """A contested component name fails only where it is used; every command says so; the rest works."""
    fresh_registry([FakeEntryPoint("copycat", lambda: _method_plugin("lora"), dist="peft-hub-copycat")])
    assert "lora" not in registry.methods() and "ia3" in registry.methods()
    with pytest.raises(DuplicateNameError) as info:
        registry.get_method("lora")
    message = str(info.value)
    assert "'lora'" in message and "plugin 'lora' (peft-hub)" in message and "plugin 'copycat' (peft-hub-copycat)" in message
    assert registry.get_method("ia3").name == "ia3"
    from peft_hub.cli import cli

    result = cli_runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "Warning: The method 'lora' is registered by both plugin" in result.stderr
    assert "plugin 'lora' (peft-hub)" in result.stderr and "plugin 'copycat' (peft-hub-copycat)" in result.stderr
    assert json.loads(result.stdout)["conflicts"] == registry.CONFLICTS and len(registry.CONFLICTS) == 1
    listing = cli_runner.invoke(cli, ["methods", "list"])
    assert listing.exit_code == 0 and "ia3" in listing.stdout and "registered by both" in listing.stderr
    used = cli_runner.invoke(cli, ["validate", "ner/minilm_lora"])
    assert used.exit_code == 1 and "The method 'lora' is registered by both plugin" in used.output


def test_entry_point_name_taken_by_another_distribution(fresh_registry, cli_runner):
    """A third-party entry point named like a built-in one loads too, under <distribution>:<name>."""
    fresh_registry([FakeEntryPoint("lora", lambda: _method_plugin("lora-plus"), dist="peft-hub-lora-plus")])
    assert registry.methods()["lora"].distribution == "peft-hub"
    entry = registry.methods()["lora-plus"]
    assert entry.plugin == "peft-hub-lora-plus:lora" and entry.distribution == "peft-hub-lora-plus"
    (conflict,) = registry.CONFLICTS
    assert "entry-point name 'lora': distribution peft-hub (loaded as 'lora') and distribution peft-hub-lora-plus" in conflict
    from peft_hub.cli import cli

    result = cli_runner.invoke(cli, ["methods", "list", "--json"])
    assert result.exit_code == 0 and "entry-point name 'lora'" in result.stderr


def test_a_register_hook_that_raises_is_reported_on_every_command(fresh_registry, cli_runner):
    module = types.ModuleType("peft_hub_raises")
    module.PEFT_HUB_API = peft_hub.PLUGIN_API

    @peft_hub.hookimpl
    def register_tasks(register):
        raise RuntimeError("forgot a file")

    module.register_tasks = register_tasks
    fresh_registry([FakeEntryPoint("raises", lambda: module, dist="peft-hub-raises")])
    from peft_hub.cli import cli

    result = cli_runner.invoke(cli, ["methods", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert "plugin 'raises' (from distribution peft-hub-raises) failed to load" in result.stderr
    assert "register_tasks: RuntimeError: forgot a file" in result.stderr


def test_broken_plugin_is_reported_and_others_still_load(fresh_registry, cli_runner):
    def boom():
        raise ImportError("No module named 'missing_dependency'")

    fresh_registry([FakeEntryPoint("broken", boom, dist="peft-hub-broken")])
    assert "lora" in registry.methods()
    assert [(f.name, f.distribution) for f in registry.FAILED] == [("broken", "peft-hub-broken")]
    assert "missing_dependency" in registry.FAILED[0].error
    from peft_hub.cli import cli

    result = cli_runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "plugin 'broken' (from distribution peft-hub-broken) failed to load" in result.stderr
    report = json.loads(result.stdout)
    assert report["failed"][0]["name"] == "broken"


def test_misspelled_hook_is_a_failed_plugin(fresh_registry):
    module = types.ModuleType("peft_hub_typo")
    module.PEFT_HUB_API = peft_hub.PLUGIN_API

    @peft_hub.hookimpl
    def register_method(register):  # missing the final "s"
        pass

    module.register_method = register_method
    fresh_registry([FakeEntryPoint("typo", lambda: module)])
    assert [f.name for f in registry.FAILED] == ["typo"]
    assert "register_method" in registry.FAILED[0].error
    assert "lora" in registry.methods()


def _failure_of(plugin: str) -> str:
    return next(f.error for f in registry.FAILED if f.name == plugin)


def test_bad_names_and_types_are_rejected(fresh_registry):
    """A broken contract skips what the plugin registered and says why; the others keep working."""
    fresh_registry([])

    class Bad:
        @peft_hub.hookimpl
        def register_methods(self, register):
            register(object())

    registry.pm.register(Bad(), name="bad-type")
    try:
        assert "lora" in registry.methods()
        assert "must be an instance of peft_hub.Method" in _failure_of("bad-type")
    finally:
        registry.pm.unregister(name="bad-type")

    class Upper(peft_hub.PeftMethod):
        name = "LoRA"

    class BadName:
        @peft_hub.hookimpl
        def register_methods(self, register):
            register(Upper())

    registry.pm.register(BadName(), name="bad-name")
    try:
        assert "LoRA" not in registry.methods() and "lora" in registry.methods()
        assert "lowercase" in _failure_of("bad-name")
    finally:
        registry.pm.unregister(name="bad-name")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError) as info:
        registry.get_method("lorra")
    assert "Did you mean 'lora'?" in str(info.value)
    assert "Valid methods: " in str(info.value) and " lora, " in str(info.value)
    with pytest.raises(UnknownNameError, match="Did you mean 'ner'"):
        registry.get_task("nerr")


def test_every_hook_is_documented_in_readme():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    import inspect

    from peft_hub import hookspecs

    specs = [f for name, f in vars(hookspecs).items() if name.startswith("register_")]
    assert len(specs) >= 5
    for spec in specs:
        signature = f"{spec.__name__}({', '.join(inspect.signature(spec).parameters)})"
        assert signature in readme, signature


def test_example_third_party_plugin_installs_and_trains(tmp_path, tiny_model, cli_runner, monkeypatch):
    """examples/peft-hub-dora, made importable with real distribution metadata (what pip writes)."""
    import shutil
    import sys
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "peft-hub-dora"
    site = tmp_path / "site"
    info = site / "peft_hub_dora-0.1.0.dist-info"
    info.mkdir(parents=True)
    shutil.copy(example / "peft_hub_dora.py", site)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: peft-hub-dora\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[peft_hub]\ndora = peft_hub_dora\n")
    monkeypatch.syspath_prepend(str(site))
    registry.reset()
    try:
        from peft_hub.cli import cli

        report = json.loads(cli_runner.invoke(cli, ["plugins"]).stdout)
        row = next(r for r in report["plugins"] if r["name"] == "dora")
        assert row["distribution"] == "peft-hub-dora" and row["registered"] == {"methods": ["dora"]}
        result = cli_runner.invoke(cli, ["adapt", "--method", "dora[r=4]", "--task", "ner", "--model", str(tiny_model),
                                         "--output", str(tmp_path / "run"), "--epochs", "1", "--quiet", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["trainable_params"] > 0
    finally:
        monkeypatch.undo()
        sys.modules.pop("peft_hub_dora", None)
        registry.reset()
        registry.load_plugins()


@pytest.mark.parametrize("kind, expected", [("methods", {"lora", "adapter", "prefix", "ia3", "full", "freeze"}),
                                            ("tasks", {"ner", "classify"}), ("objectives", {"mlm", "wwm"})])
def test_listing_commands(kind, expected, cli_runner):
    from peft_hub.cli import cli

    result = cli_runner.invoke(cli, [kind, "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert expected <= {r["name"] for r in rows}
    assert all(r["distribution"] == "peft-hub" and isinstance(r["options"], list) for r in rows)


def test_every_list_command_takes_json(cli_runner):
    from peft_hub.cli import cli

    groups = [name for name, command in cli.commands.items() if "list" in getattr(command, "commands", {})]
    assert {"methods", "tasks", "objectives", "models", "recipes"} <= set(groups)
    for group in groups:
        result = cli_runner.invoke(cli, [group, "list", "--json"])
        assert result.exit_code == 0, (group, result.output)
        rows = json.loads(result.stdout)
        assert (rows or group == "hub") and all("name" in row for row in rows), group  # (a new hub is empty)
    text = cli_runner.invoke(cli, ["methods", "list"]).output
    assert "lora: " in text and "default learning rate 0.001, 0.002 for ner" in text
