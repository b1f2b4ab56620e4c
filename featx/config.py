"""Settings: choices declared once, config dataclasses validated in one place, the project file ``featx.toml``.

Each command's settings are a frozen dataclass (``ExtractConfig``, ``FitConfig``, ...) derived from
:class:`Config`, whose fields are declared with :func:`setting`: a default, one line of help, and a
:class:`Choice` or a check where the value is constrained. The command line builds its options from
these fields (help text, choices and defaults shown by ``--help``), validation happens here once, and
the did-you-mean message comes from the same :class:`Choice`.

Settings resolve in one order, and each value remembers where it came from::

    command line  >  featx.toml (or --config FILE)  >  the backbone spec  >  library defaults

:meth:`Config.resolve` applies the first two over the defaults; a runner that knows the backbone
fills settings still unset (``None``) from its spec with :meth:`Config.effective`. The whole object
goes into provenance with :meth:`Config.record`, and :meth:`Config.from_record` rebuilds it.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

from featx.errors import ConfigError, did_you_mean

PROJECT_FILE = "featx.toml"
DEFAULT, ARGUMENT = "default", "argument"


class Choice:
    """The allowed values of one setting, declared once.

    Parameters
    ----------
    what : str
        What a value is, for messages (``provider``, ``head``).
    values : tuple of str, or a callable returning them
        A callable for registries (heads, backbones) that grow after import.
    """

    def __init__(self, what: str, values: Iterable[str] | Callable[[], Iterable[str]]):
        self.what = what
        self._values = values

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self._values() if callable(self._values) else self._values)

    def __contains__(self, value) -> bool:
        return value in self.values

    def __iter__(self):
        return iter(self.values)

    def check(self, value: str) -> str:
        """``value`` when allowed; else a ConfigError naming the closest values and every allowed one."""
        if value not in self.values:
            raise ConfigError(
                f"unknown value {value!r}.{did_you_mean(value, self.values)} Choose one of: {', '.join(self.values)}.",
                self.what,
            )
        return value

    @property
    def metavar(self) -> str:
        return "[" + "|".join(self.values) + "]"


def setting(
    default: Any = None,
    help: str = "",
    *,
    choice: Choice | None = None,
    check: Callable[[Any], Any] | None = None,
    minimum: float | None = None,
    identity: bool = False,
) -> Any:
    """A config field: its default, one line of help, and what constrains it.

    ``check(value)`` returns the value (possibly normalised) or raises ConfigError. ``identity``: the setting
    changes the numbers it produces (it is part of a feature set's identity; ``predict`` repeats it).
    A mutable default (a list) is copied into a tuple.
    """
    meta = {"help": help, "choice": choice, "check": check, "minimum": minimum, "identity": identity}
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    """Base of the command configs: validated on construction, resolved from layers, recorded whole.

    ``sources`` maps each field set by something other than the defaults to where it came from.
    Subclasses name their ``featx.toml`` section and may add cross-field checks in :meth:`validate`.
    """

    section: ClassVar[str] = ""
    sources: Mapping[str, str] = dataclasses.field(
        default_factory=dict, compare=False, repr=False, metadata={"internal": True}
    )

    def __post_init__(self):
        sources = dict(self.sources)
        for f in settings_of(type(self)):  # set by the caller, not resolved from layers: an argument
            if f.name not in sources and getattr(self, f.name) != f.default:
                sources[f.name] = ARGUMENT
        object.__setattr__(self, "sources", sources)
        for f in settings_of(type(self)):
            value = _coerce(getattr(self, f.name), _hint(type(self), f.name), f.name, self._source(f.name))
            object.__setattr__(self, f.name, _constrain(value, f, self._source(f.name)))
        try:
            self.validate()
        except ConfigError as exc:
            raise ConfigError(exc.message, exc.field, exc.source or self._source(exc.field)) from None

    def _source(self, name: str | None) -> str:
        return self.sources.get(name, DEFAULT) if name else DEFAULT

    def validate(self) -> None:
        """Cross-field checks (override); raise ConfigError with ``field`` set."""

    def require(self, *names: str) -> None:
        """A ConfigError for the first of ``names`` that is not set (what a run cannot start without)."""
        for name in names:
            if getattr(self, name) in (None, "", ()):
                where = f"featx.toml's [{self.section}]" if self.section else "the config"
                raise ConfigError(f"required; give it on the command line or in {where}.", name, DEFAULT)

    @classmethod
    def resolve(cls, *layers: tuple[str, Mapping[str, Any]]):
        """The config from ``layers`` (source name, values), the first one winning, over the defaults.

        Unknown keys are refused, naming their source; ``None`` values mean "not set here".
        """
        names = {f.name for f in settings_of(cls)}
        values, sources = {}, {}
        for source, layer in reversed(layers):
            for key, value in layer.items():
                if key not in names:
                    raise ConfigError(
                        f"unknown setting.{did_you_mean(key, names)} Settings of "
                        f"{cls.section or cls.__name__}: {', '.join(sorted(names))}.",
                        key,
                        source,
                    )
                if value is not None:
                    values[key], sources[key] = value, source
        return cls(**values, sources=sources)

    def replace(self, source: str = ARGUMENT, **changes):
        """A copy with ``changes`` (recorded as coming from ``source``), validated again."""
        sources = {**self.sources, **{k: source for k in changes}}
        return dataclasses.replace(self, **changes, sources=sources)

    def effective(self, name: str, fallback, fallback_source: str = "backbone spec") -> tuple[Any, str]:
        """``(value, source)`` of a setting whose ``None`` means "take it from ``fallback``" (e.g. the spec)."""
        value = getattr(self, name)
        return (fallback, fallback_source) if value is None else (value, self._source(name))

    def record(self) -> dict:
        """``{"values": {...}, "sources": {...}}``, JSON-able: what provenance stores."""
        values = {f.name: _jsonable(getattr(self, f.name)) for f in settings_of(type(self))}
        return {"values": values, "sources": {k: self._source(k) for k in values}}

    @classmethod
    def from_record(cls, record: Mapping, **overrides):
        """The config a :meth:`record` describes (unknown keys from other featx versions are dropped)."""
        names = {f.name for f in settings_of(cls)}
        values = {k: v for k, v in (record.get("values") or {}).items() if k in names}
        sources = {k: v for k, v in (record.get("sources") or {}).items() if k in values and v != DEFAULT}
        values.update(overrides)
        sources.update({k: ARGUMENT for k in overrides})
        return cls(**values, sources=sources)

    @classmethod
    def identity_fields(cls) -> list[str]:
        """The settings that change the numbers (``setting(identity=True)``)."""
        return [f.name for f in settings_of(cls) if f.metadata.get("identity")]


def settings_of(cls) -> list[dataclasses.Field]:
    """The user-facing fields of a config class (not ``sources``)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def field_of(cls, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``cls``."""
    for f in settings_of(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def _constrain(value, f: dataclasses.Field, source: str):
    meta = f.metadata
    if value is None:
        return None
    try:
        if meta.get("choice") is not None:
            check = meta["choice"].check
            return tuple(check(v) for v in value) if isinstance(value, tuple) else check(value)
        if meta.get("minimum") is not None and value < meta["minimum"]:
            raise ConfigError(f"must be at least {meta['minimum']:g}, got {value!r}.")
        if meta.get("check") is not None:
            return meta["check"](value)
    except ConfigError as exc:
        raise ConfigError(exc.message, f.name, source) from None
    return value


# ----------------------------------------------------------------------------------------- value types
def _hint(cls, name: str):
    return _hints(cls)[name]


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _type_name(t) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a text", Path: "a path"}.get(t, str(t))


def _coerce(value, hint, name: str, source: str):
    """``value`` as the field's type (TOML and Python values alike); a ConfigError names the field otherwise."""
    if value is None:
        return None
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        last = None
        for t in inner:
            try:
                return _coerce(value, t, name, source)
            except ConfigError as exc:
                last = exc
        raise last
    if origin in (tuple, list):
        item = args[0] if args else str
        if isinstance(value, str):  # a comma-separated list from the command line: its numbers are text
            value = [_number(v.strip(), item) for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}.", name, source)
        return tuple(_coerce(v, item, name, source) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value).expanduser()
    else:
        return value
    raise ConfigError(f"expected {_type_name(hint)}, got {value!r}.", name, source)


def _number(text: str, hint):
    """``text`` as an int or float when ``hint`` asks for one and it reads as one (else as it is, for the error)."""
    try:
        return int(text) if hint is int else float(text) if hint is float else text
    except ValueError:
        return text


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


# ----------------------------------------------------------------------------------------- featx.toml
@dataclass(frozen=True)
class ProjectFile:
    """The sections of a project config file (empty when there is none)."""

    path: Path | None
    sections: Mapping[str, Mapping[str, Any]]

    @property
    def source(self) -> str:
        return str(self.path) if self.path else PROJECT_FILE

    def layer(self, section: str) -> tuple[str, Mapping[str, Any]]:
        """``(source, values)`` of one section, as :meth:`Config.resolve` takes it."""
        return f"{self.source} [{section}]", self.sections.get(section, {})


def load_project(
    path: str | Path | None = None, known_sections: Iterable[str] = (), cwd: str | Path | None = None
) -> ProjectFile:
    """``path`` (which must exist), else ``featx.toml`` in ``cwd`` when present, else no file.

    Raises
    ------
    ConfigError
        Missing file, invalid TOML, a section that is not a command, or a section that is not a table.
    """
    if path is None:
        candidate = Path(cwd or ".") / PROJECT_FILE
        if not candidate.is_file():
            return ProjectFile(None, {})
        path = candidate
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path}. Give an existing TOML file (e.g. featx.toml).", "config", ARGUMENT
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).", None, str(path)) from None
    known = tuple(known_sections)
    for name, table in data.items():
        if known and name not in known:
            raise ConfigError(
                f"{path}: unknown section [{name}].{did_you_mean(name, known)} Sections are commands: "
                f"{', '.join(known)}.",
                None,
                str(path),
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: '{name}' must be a section ([{name}]) of settings, got {table!r}.", None, str(path)
            )
    return ProjectFile(path, data)
