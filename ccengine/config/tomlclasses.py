"""TOML tables to frozen dataclasses, with every problem located (`queues.inbound.port: ...`).

Generic: it knows dataclass fields, their type hints (str, int, float, bool, tuple[X, ...],
Mapping[str, X], nested dataclasses) and an optional `problems()` method per dataclass for
value checks. config.py says what the configuration is; this module only converts.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any
from collections.abc import Mapping


def build(cls: type, data: dict, where: str, problems: list[str]) -> Any:
    """An instance of dataclass `cls` from `data`; problems are appended, never raised."""
    return _build(cls, data, where, problems)


def merge(base: dict, over: dict) -> dict:
    """`over` merged into `base`, table by table, key by key."""
    return _merge(base, over)


def _convert(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table")
            return tp()
        return _build(tp, value, where, problems)
    if origin in (Mapping, dict, typing.get_origin(Mapping[str, int])):
        key_tp, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table")
            return {}
        return {str(k): _convert(val_tp, v, f"{where}.{k}", problems) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {value!r}")
            return ()
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(item_tp, v, f"{where}[{i}]", problems) for i, v in enumerate(value))
    expected: Any = {str: str, int: int, float: (int, float), bool: bool}[tp]
    if isinstance(value, bool) and tp is not bool or not isinstance(value, expected):
        problems.append(f"{where}: expected {tp.__name__}, got {value!r}")
        return tp()
    return float(value) if tp is float else value


def _build(cls: type, data: dict, where: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in names:
            problems.append(f"{prefix}{key}: unknown key")
    before = len(problems)
    kwargs = {k: _convert(hints[k], v, f"{prefix}{k}", problems) for k, v in data.items() if k in names}
    obj = cls(**kwargs)
    check = getattr(obj, "problems", None)
    if check and len(problems) == before:  # value checks only make sense on well-typed input
        problems.extend(f"{prefix}{p}" for p in check())
    return obj


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


