"""Turn a plain mapping (parsed YAML) into typed, frozen config dataclasses.

One small converter instead of hand-written checks per key: each dataclass
field's type says what is accepted, and every error names the dotted key
that caused it. Nothing here knows what any setting means.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config: the message names the key and says what was wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


def build(cls: type[T], data: Any, key: str = "") -> T:
    """An instance of dataclass `cls` from `data`, or ConfigError naming the bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise ConfigError(_join(key, unknown[0]), f"unknown key (allowed here: {allowed})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        sub = _join(key, name)
        if name in data:
            values[name] = convert(hints[name], data[name], sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(sub, "required key is missing")
    try:
        return cls(**values)
    except ConfigError as e:  # raised by __post_init__ with a key relative to `cls`
        raise ConfigError(_join(key, e.key), e.problem) from e
    except (TypeError, ValueError) as e:
        # A settings error that names its own field (control.settings.SettingError).
        inner, problem = getattr(e, "key", None), getattr(e, "problem", None)
        if isinstance(inner, str) and isinstance(problem, str):
            raise ConfigError(_join(key, inner), problem) from e
        raise ConfigError(key, str(e)) from e


def convert(tp: Any, value: Any, key: str) -> Any:
    """`value` checked (and converted where lossless) against the annotation `tp`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        present = [o for o in options if o is not type(None)]
        if len(present) == 1:
            return convert(present[0], value, key)  # its error names the inner key
        errors = []
        for option in present:
            try:
                return convert(option, value, key)
            except ConfigError as e:
                errors.append(e.problem)
        raise ConfigError(key, " or ".join(errors))
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {_kind(value)}")
        args = get_args(tp)
        item = args[0] if args else Any
        return tuple(convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {_kind(value)}")
        kt, vt = get_args(tp) or (Any, Any)
        return {convert(kt, k, key): convert(vt, v, _join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {_kind(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"config schema uses an unsupported type {tp!r} at {key}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )
