"""The one plugin manager: entry-point discovery, registration with provenance, lookup by name.

Plugins (built-in ones included) are found through the ``peft_hub`` entry-point group. A plugin
that fails to import is recorded in :data:`FAILED` with the reason and skipped; the others load.
Registries are computed by calling the hooks, so a plugin registered later (tests do this) is seen.

Names that collide are never dropped in silence: two entry points of one name both load (the later
one under ``<distribution>:<name>``), and a component name that two plugins register is
*contested*. Both are listed in :data:`CONFLICTS` (every command prints them); every other name keeps
working, and a contested name fails only where it is used, naming both plugins.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import DuplicateNameError, PluginError, UnknownNameError
from .version import PLUGIN_API, PLUGIN_API_CHANGES, __version__

ENTRY_POINT_GROUP = hookspecs.PROJECT
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-.]*)*\Z")

pm = pluggy.PluginManager(hookspecs.PROJECT)
pm.add_hookspecs(hookspecs)


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class FailedPlugin:
    name: str
    distribution: str | None
    error: str


#: plugin name -> where it came from (filled by :func:`load_plugins`)
PROVENANCE: dict[str, PluginInfo] = {}
#: plugins that could not be loaded, with the reason
FAILED: list[FailedPlugin] = []
#: name collisions, one readable sentence each (entry points and components)
CONFLICTS: list[str] = []
#: (kind, name) -> why the name cannot be used: two plugins registered it
CONTESTED: dict[tuple[str, str], str] = {}
_loaded = False


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_plugins() -> None:
    """Load every plugin of the ``peft_hub`` entry-point group once; record failures, don't raise."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if pm.is_blocked(ep.name):
            continue
        name = ep.name
        if pm.get_plugin(name) is not None:  # another distribution took the name: load this one too
            name = f"{dist_name}:{ep.name}"
            if pm.get_plugin(name) is not None:
                continue  # the same distribution seen twice (e.g. installed and on sys.path)
            taken = PROVENANCE.get(ep.name, PluginInfo(ep.name)).distribution
            _conflict(f"two plugins have the entry-point name {ep.name!r}: distribution {taken} (loaded as "
                      f"{ep.name!r}) and distribution {dist_name} (loaded as {name!r}). Rename one of them in "
                      "its pyproject.toml [project.entry-points.peft_hub].")
        try:
            plugin = ep.load()
            outdated = api_mismatch(plugin)
            if outdated:  # refused before any hook is called, so before any data is read
                FAILED.append(FailedPlugin(name, dist_name, outdated))
                continue
            pm.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not break the others
            FAILED.append(FailedPlugin(name, dist_name, f"{type(exc).__name__}: {exc}"))
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
            continue
        PROVENANCE[name] = PluginInfo(name, dist_name, dist.version if dist is not None else None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) if exc.plugin is not None else "?"
        FAILED.append(FailedPlugin(name, PROVENANCE.pop(name, PluginInfo(name)).distribution, str(exc)))
        pm.unregister(exc.plugin)


CHANGELOG = "peft_hub/PLUGIN_API.md"


def api_mismatch(plugin: Any) -> str | None:
    """Why a plugin module cannot be used with this plugin API (None: it declares this version)."""
    declared = getattr(plugin, "PEFT_HUB_API", None)
    if declared == PLUGIN_API:
        return None
    since = declared if isinstance(declared, int) and not isinstance(declared, bool) else 1
    changes = "; ".join(f"API {v}: {PLUGIN_API_CHANGES[v]}" for v in sorted(PLUGIN_API_CHANGES) if v > since)
    said = (f"declares PEFT_HUB_API = {str(declared)[:20]}" if declared is not None
            else "declares no plugin API version (PEFT_HUB_API in its module)")
    if isinstance(declared, int) and declared > PLUGIN_API:
        return (f"it {said}, newer than this peft-hub {__version__} (plugin API {PLUGIN_API}): upgrade peft-hub "
                f"(see {CHANGELOG}).")
    return (f"it {said}; this peft-hub {__version__} has plugin API {PLUGIN_API}. What changed: {changes}. "
            f"Each change and how to update is described in {CHANGELOG}; update the plugin and declare PEFT_HUB_API = {PLUGIN_API}")


def _contract_classes() -> tuple[type, ...]:
    from .augment import Augmenter
    from .heads import Head
    from .methods import Method, PeftMethod, StateDictMethod
    from .objectives import Objective
    from .tasks import Task

    return (Method, PeftMethod, StateDictMethod, Task, Objective, Augmenter, Head)


def _fits(contract: Any, override: Any) -> bool:
    """Whether ``override`` accepts every call the core makes of ``contract``: the contract's
    positional parameters by the same names in the same order (or ``*args``), its ``**kwargs``,
    and anything more only as optional."""
    import inspect

    def split(function: Any) -> tuple[list, set]:
        parameters = list(inspect.signature(function).parameters.values())[1:]
        return [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)], \
            {p.kind for p in parameters}

    (want, want_kinds), (have, have_kinds) = split(contract), split(override)
    anything = inspect.Parameter.VAR_POSITIONAL in have_kinds
    if not anything and [p.name for p in have[: len(want)]] != [p.name for p in want]:
        return False
    if inspect.Parameter.VAR_KEYWORD in want_kinds and inspect.Parameter.VAR_KEYWORD not in have_kinds:
        return False
    extra = [] if anything else have[len(want):]
    required_keywords = [p for p in inspect.signature(override).parameters.values()
                         if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    return all(p.default is not p.empty for p in extra) and not required_keywords


def contract_problems(obj: Any) -> list[str]:
    """Every method ``obj``'s class overrides whose parameters do not fit the plugin contract."""
    import inspect

    contracts = _contract_classes()
    seen, problems = set(), []
    for klass in type(obj).__mro__:
        if klass in contracts or klass is object:
            break
        for name, value in vars(klass).items():
            if name in seen or name.startswith("_") or not inspect.isfunction(value):
                continue
            seen.add(name)
            defined = next((c for c in type(obj).__mro__ if c in contracts and name in vars(c)), None)
            if defined is not None and inspect.isfunction(vars(defined)[name]) and not _fits(vars(defined)[name], value):
                problems.append(f"{klass.__name__}.{name}{inspect.signature(value)} does not fit the contract's "
                                f"{defined.__name__}.{name}{inspect.signature(vars(defined)[name])}")
    return problems


def reset() -> None:
    """Forget every loaded plugin (tests use this to load plugins again)."""
    global _loaded
    for plugin in list(pm.get_plugins()):
        pm.unregister(plugin)
    PROVENANCE.clear()
    FAILED.clear()
    CONFLICTS.clear()
    CONTESTED.clear()
    _loaded = False


def _conflict(message: str) -> None:
    if message not in CONFLICTS:
        CONFLICTS.append(message)


# -- registration with provenance ---------------------------------------------------------------


@dataclass
class Registered:
    """One registered component and the plugin that registered it."""

    name: str
    obj: Any
    plugin: str
    extra: dict = field(default_factory=dict)

    @property
    def distribution(self) -> str | None:
        return _dist_of(self.plugin)


def _collect(hook_name: str, kind: str, make: Callable[..., Registered]) -> dict[str, Registered]:
    """Call ``hook_name`` on every plugin with a ``register`` bound to that plugin."""
    load_plugins()
    found: dict[str, Registered] = {}
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):  # registration order
        def register(*args: Any, _plugin: str = impl.plugin_name, **kwargs: Any) -> None:
            entry = make(_plugin, *args, **kwargs)
            if not isinstance(entry.name, str) or not NAME_RE.match(entry.name):
                raise PluginError(
                    f"Plugin {_plugin!r} registered the {kind} name {entry.name!r}: names must be "
                    "lowercase letters, digits, '-' or '_' (e.g. 'lora', 'prefix-tuning')."
                )
            if entry.name in found or (kind, entry.name) in CONTESTED:
                other = found.pop(entry.name, None)
                if other is not None:  # a third claimant keeps the first two named
                    message = (
                        f"The {kind} {entry.name!r} is registered by both plugin {other.plugin!r} "
                        f"({other.distribution or 'not installed'}) and plugin {_plugin!r} "
                        f"({entry.distribution or 'not installed'}), so neither can be used. Uninstall "
                        "one of them, or rename the component in one of the plugins."
                    )
                    CONTESTED[kind, entry.name] = message
                    _conflict(message)
                return
            found[entry.name] = entry

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:  # a plugin's bug (or broken contract) must not hide the other plugins
            error = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            failure = FailedPlugin(impl.plugin_name, _dist_of(impl.plugin_name), f"{hook_name}: {error}")
            if failure not in FAILED:
                FAILED.append(failure)
    return found


def _dist_of(plugin: str) -> str | None:
    info = PROVENANCE.get(plugin)
    return info.distribution if info else None


def _component(kind: str, base: type) -> Callable[..., Registered]:
    def make(plugin: str, obj: Any) -> Registered:
        if not isinstance(obj, base):
            raise PluginError(
                f"Plugin {plugin!r} passed {obj!r} to register() for a {kind}: it must be an "
                f"instance of peft_hub.{base.__name__}."
            )
        problems = contract_problems(obj)
        if problems:
            raise PluginError(f"its {kind} {getattr(obj, 'name', '?')!r} was written for another plugin contract: "
                              + "; ".join(problems) + f" (plugin API {PLUGIN_API}; the changes are described in {CHANGELOG})")
        return Registered(getattr(obj, "name", None), obj, plugin)

    return make


def methods() -> dict[str, Registered]:
    from .methods import Method

    return _collect("register_methods", "method", _component("method", Method))


def tasks() -> dict[str, Registered]:
    from .tasks import Task

    return _collect("register_tasks", "task", _component("task", Task))


def objectives() -> dict[str, Registered]:
    from .objectives import Objective

    return _collect("register_objectives", "objective", _component("objective", Objective))


def augmenters() -> dict[str, Registered]:
    from .augment import Augmenter

    return _collect("register_augmenters", "augmenter", _component("augmenter", Augmenter))


def models() -> dict[str, Registered]:
    def make(plugin: str, name: str, resolve: Callable[[], str | Path], description: str = "") -> Registered:
        return Registered(name, resolve, plugin, {"description": description})

    return _collect("register_models", "model alias", make)


def recipes() -> dict[str, Registered]:
    def make(plugin: str, name: str, path: str | Path) -> Registered:
        return Registered(name, Path(path), plugin)

    return _collect("register_recipes", "recipe", make)


def _get(kind: str, table: dict[str, Registered], name: str, hint: str) -> Registered:
    if (kind, name) in CONTESTED:
        raise DuplicateNameError(CONTESTED[kind, name])
    if name not in table:
        refused = [f"plugin {f.name!r} ({f.distribution or 'not installed'}): {f.error}" for f in FAILED]
        if refused:  # the name may be one of theirs
            hint += " Plugins that could not be loaded: " + " | ".join(refused)
        raise UnknownNameError(kind, name, table, hint)
    return table[name]


def check() -> None:
    """Call every ``register_*`` hook once, so that name collisions and hooks that raise are known
    (:data:`CONFLICTS`, :data:`FAILED`) before any command runs."""
    for table in (methods, tasks, objectives, augmenters, models, recipes):
        table()


def get_method(name: str):
    return _get("method", methods(), name, "See `peft-hub methods list`.").obj


def get_task(name: str):
    return _get("task", tasks(), name, "See `peft-hub tasks list`.").obj


def get_objective(name: str):
    """A registered objective, or several trained together: ``mlm+sop``."""
    if "+" in name:
        from .combined import combine

        return combine(tuple(get_objective(part.strip()) for part in name.split("+")))
    return _get("objective", objectives(), name, "See `peft-hub objectives list`.").obj


def get_augmenter(name: str):
    return _get("augmenter", augmenters(), name, "See `peft-hub augmenters list`.").obj


def get_recipe(name: str) -> Path:
    return _get("recipe", recipes(), name, "See `peft-hub recipes list`, or pass a file path.").obj


def describe(table: dict[str, Registered]) -> list[dict]:
    """What ``methods list`` (and the other listings) show of each component: its description,
    where it came from, every option (type, default, bounds, help), a method's default rate."""
    from .options import describe as describe_options

    rows = []
    for name, entry in sorted(table.items()):
        obj = entry.obj
        row = {"name": name, "description": obj.description, "plugin": entry.plugin,
               "distribution": entry.distribution, "options": describe_options(obj.Options)}
        if getattr(obj, "default_learning_rate", None):
            row["default_learning_rate"] = obj.default_learning_rate
        if hasattr(obj, "default_rate"):  # a method: tasks whose default rate differs (Method.default_rate)
            own = {t: obj.default_rate(task.obj) for t, task in tasks().items()}
            if other := {t: rate for t, rate in own.items() if rate != obj.default_learning_rate}:
                row["task_learning_rates"] = other
        if hasattr(obj, "refusal"):  # a method: what it supports with its default options (None: it does)
            defaults = obj.Options()
            row["supports"] = {c: obj.refusal(c, defaults) or True for c in ("merge", "mixed_batches", "quantized")}
        if getattr(obj, "shapes", None) is not None:  # an augmenter: the example shapes it changes
            row["shapes"] = list(obj.shapes)
        rows.append(row)
    return rows


def plugins_report() -> dict:
    """What ``peft-hub plugins`` prints: every plugin, its hooks and what it registered."""
    load_plugins()
    registered: dict[str, dict[str, list[str]]] = {}
    for kind, table in (("methods", methods), ("tasks", tasks), ("objectives", objectives), ("augmenters", augmenters),
                        ("models", models), ("recipes", recipes)):
        for entry in table().values():
            registered.setdefault(entry.plugin, {}).setdefault(kind, []).append(entry.name)
    rows = []
    for name, plugin in pm.list_name_plugin():
        info = PROVENANCE.get(name, PluginInfo(name))
        rows.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "distribution": info.distribution,
                "version": info.version,
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                "registered": registered.get(name, {}),
            }
        )
    rows.sort(key=lambda r: r["name"])
    return {
        "plugins": rows,
        "failed": [{"name": f.name, "distribution": f.distribution, "error": f.error} for f in FAILED],
        "conflicts": list(CONFLICTS),
    }


def warn_problems(echo: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
    """Say what is wrong with the installed plugins: name collisions, plugins that failed."""
    for message in CONFLICTS:
        echo(f"Warning: {message}")
    for f in FAILED:
        dist = f" (from distribution {f.distribution})" if f.distribution else ""
        echo(
            f"Warning: plugin {f.name!r}{dist} failed to load and is skipped: {f.error}. "
            f"Fix or uninstall it (pip uninstall {f.distribution or f.name})."
        )
