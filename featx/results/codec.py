"""Frozen dataclasses <-> plain JSON values, by their type hints: the one place that reads results' keys.

Field names are the JSON keys. Nested dataclasses, ``X | None``, ``tuple[X, ...]``, ``Mapping[str, X]``
and ``Any`` are handled; a field with ``metadata={"extra": True}`` (a mapping) holds the keys the class
does not declare, written back at the top level, so nothing a file carries is lost on a round trip.
Keys a file lacks (written by an older featx) take the field's default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections import abc
from collections.abc import Mapping
from functools import cache
from typing import Any


def extra_field() -> Any:
    """A mapping field for the keys a class does not declare (see the module docstring)."""
    return dataclasses.field(default_factory=dict, metadata={"extra": True})


def to_json(obj) -> Any:
    """A dataclass (or a value inside one) as plain JSON-able values; mappings keep their order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("extra"):
                out.update({k: to_json(v) for k, v in value.items()})
            else:
                out[f.name] = to_json(value)
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # a numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # results never hold a bare NaN: what cannot be computed is null (and said why elsewhere)
    return obj


def from_json(cls, data: Mapping):
    """An instance of the dataclass ``cls`` from :func:`to_json` output (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs, extra_name = {}, None
    for f in dataclasses.fields(cls):
        if f.metadata.get("extra"):
            extra_name = f.name
        elif f.name in data:
            kwargs[f.name] = decode(hints[f.name], data[f.name])
    if extra_name is not None:
        declared = {f.name for f in dataclasses.fields(cls)}
        kwargs[extra_name] = {k: v for k, v in data.items() if k not in declared}
    return cls(**kwargs)


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def decode(hint, value):
    """``value`` (from JSON) as the type ``hint`` describes."""
    if value is None or hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        for t in inner:  # the first type that takes the value (e.g. int | str for a fold named "final")
            try:
                return decode(t, value)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"cannot read {value!r} as {hint}")
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            return tuple(decode(t, v) for t, v in zip(args, value))
        return tuple(decode(args[0] if args else Any, v) for v in value)
    if origin in (dict, abc.Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {k: decode(inner, v) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"expected a text, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    return value
