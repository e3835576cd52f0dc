"""Strict, typed option models built on dataclasses.

Methods, tasks and the recipe schema declare their options as dataclasses whose fields are made
with :func:`option`. :func:`parse` turns a plain dict (from YAML, a method string or ``key=value``
overrides) into an instance, rejecting unknown keys and wrong types, and collecting every error
instead of stopping at the first one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, low: float | None = None, high: float | None = None,
           above: float | None = None, below: float | None = None) -> Any:
    """A documented dataclass field. Mutable defaults (lists, dicts) are copied per instance;
    a class as default (a nested option model) is instantiated per instance.

    Bounds of a number option, or of every number of a list option (checked by :func:`parse`, shown
    by ``methods list`` and the like): ``low`` / ``high`` inclusive, ``above`` / ``below`` exclusive;
    ``None`` values are not checked.
    ``option(16, "rank", low=1)``, ``option(0.1, "dropout", low=0, below=1)``."""
    metadata = {"help": help}
    bounds = {k: v for k, v in (("low", low), ("high", high), ("above", above), ("below", below)) if v is not None}
    if bounds:
        metadata["bounds"] = bounds
    if isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class Options:
    """Base class of every option model. Subclasses must be ``@dataclass``es."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"list[{_type_name(inner)}]"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message never echoes a huge value."""
    short = reprlib.Repr()  # keyword arguments only from Python 3.12
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 3, 6, 6, limit, limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce(value: Any, tp: Any, where: str, errors: list[str]) -> Any:
    """Return ``value`` checked against ``tp``; append a message to ``errors`` when it does not fit."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {_show(value)}")
            return None
        return _parse_into(tp, value, where, errors)
    if origin in (Union, types.UnionType):
        refusals: list[str] = []
        for arg in get_args(tp):
            trial: list[str] = []
            out = _coerce(value, arg, where, trial)
            if not trial:
                return out
            refusals += trial
        # a value of the right type but a wrong value (a non-finite number) says so, not "expected ..."
        errors.append(next((r for r in refusals if "finite" in r), f"{where}: expected {_type_name(tp)}, got {_show(value)}"))
        return None
    if origin is Literal:
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        errors.append(f"{where}: {_show(value)} is not one of {_type_name(tp)}{hint}")
        return None
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            errors.append(f"{where}: expected a list, got {_show(value)}")
            return None
        return [_coerce(v, inner, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {_show(value)}")
            return None
        return dict(value)
    if tp is type(None):
        if value is not None:
            errors.append(f"{where}: expected null, got {_show(value)}")
        return None
    if tp is bool:
        if isinstance(value, bool):
            return value
        errors.append(f"{where}: expected true or false, got {_show(value)}")
        return None
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        errors.append(f"{where}: expected an integer, got {_show(value)}")
        return None
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            errors.append(f"{where}: expected a number, got {_show(value)}")
        elif not math.isfinite(number):  # every number option, of every plugin: .inf and .nan never make sense
            errors.append(f"{where}: must be a finite number, got {_show(value)}")
            number = None
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        errors.append(f"{where}: expected a string, got {_show(value)}")
        return None
    raise TypeError(f"unsupported option type {tp!r} at {where}")  # a bug in an option model


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def bounds_text(bounds: dict[str, float]) -> str:
    """``[0, 1)``, ``at least 1``, ``more than 0`` ... for the bounds of :func:`option`."""
    lower = ("[", bounds["low"]) if "low" in bounds else ("(", bounds["above"]) if "above" in bounds else None
    upper = ("]", bounds["high"]) if "high" in bounds else (")", bounds["below"]) if "below" in bounds else None
    if lower and upper:
        return f"in {lower[0]}{_number(lower[1])}, {_number(upper[1])}{upper[0]}"
    if lower:
        return f"{'at least' if lower[0] == '[' else 'more than'} {_number(lower[1])}"
    return f"{'at most' if upper[0] == ']' else 'less than'} {_number(upper[1])}"


def _out_of_bounds(value: Any, bounds: dict[str, float]) -> bool:
    """Whether a number, or any number of a list, is outside ``bounds`` (None and text never are)."""
    if isinstance(value, (list, tuple)):
        return any(_out_of_bounds(v, bounds) for v in value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return (("low" in bounds and value < bounds["low"]) or ("high" in bounds and value > bounds["high"])
            or ("above" in bounds and value <= bounds["above"]) or ("below" in bounds and value >= bounds["below"]))


def _parse_into(cls: type[T], data: dict, where: str, errors: list[str]) -> T | None:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            valid = ", ".join(fields) or "(none)"
            errors.append(f"{path}: unknown key{hint} Valid keys: {valid}.")
            continue
        kwargs[key] = _coerce(value, hints[key], path, errors)
        bounds = fields[key].metadata.get("bounds")
        if bounds and _out_of_bounds(kwargs[key], bounds):
            errors.append(f"{path}: must be {bounds_text(bounds)}, got {_show(kwargs[key])}")
    for name, f in fields.items():
        if name not in kwargs and f.default is _MISSING and f.default_factory is _MISSING:
            errors.append(f"{where + '.' if where else ''}{name}: required, but missing")
    if errors:
        return None
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        problems = check()
        if isinstance(problems, str) or not isinstance(problems, (list, tuple)):  # a plugin's mistake, said plainly
            problems = [str(problems)]
        errors.extend(f"{where}.{msg}" if where else msg for msg in problems)
    return obj


def parse(cls: type[T], data: dict | None, where: str = "") -> tuple[T | None, list[str]]:
    """Parse ``data`` into ``cls``; returns ``(instance or None, errors)``."""
    errors: list[str] = []
    obj = _parse_into(cls, data or {}, where, errors)
    return (None if errors else obj), errors


def to_dict(obj: Any) -> Any:
    """A plain (YAML/JSON-able) view of an options instance."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def describe(cls: type) -> list[dict]:
    """Name, type, default and help of every option, for ``methods list`` / ``tasks list``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            default = None
        row = {"name": f.name, "type": _type_name(hints[f.name]), "default": default, "help": f.metadata.get("help", "")}
        if f.metadata.get("bounds"):
            row["range"] = bounds_text(f.metadata["bounds"])
        rows.append(row)
    return rows
