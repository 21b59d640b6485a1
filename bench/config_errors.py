"""How a config that breaks its schema reads: one line naming the full key and what it should be (the
valid keys of an unknown one, the type of a wrong value, every choice of an Enum setting), for
:func:`bench.config.validate` to raise as a ``bench: error``."""
from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, KeyValidationError, OmegaConfBaseException, ValidationError


def _field_types(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema) if dataclasses.is_dataclass(schema) else {}


def _type_name(tp: Any) -> str:
    """``int``, ``float or null``, ``list[int]``, ``one of ce, mse``: how a field's type reads in an error message."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(m.value for m in tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join([*map(_type_name, args), "null"])
    if typing.get_origin(tp) in (list, dict) and args and isinstance(args[-1], type) and issubclass(args[-1], enum.Enum):
        return _type_name(args[-1])  # an entry of a list (a value of a dict) of choices
    return getattr(tp, "__name__", None) if not args else str(tp).replace("typing.", "")


def _locate(node: Any, key: str, value: Any, path: str = "") -> str | None:
    """The path of the first ``key`` holding ``value`` in ``node``: OmegaConf names only the last key of
    an error inside a list of dataclasses (``loss`` for ``variants[0].loss``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else str(k)
            if str(k) == key and not isinstance(v, (dict, list)) and str(v) == str(value):
                return here
            if (found := _locate(v, key, value, here)) is not None:
                return found
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if (found := _locate(v, key, value, f"{path}[{i}]")) is not None:
                return found
    return None


def explain(e: OmegaConfBaseException, node: DictConfig, schema: type, key: str) -> str:
    """One line naming the full key, what it should be, and the valid keys where it is unknown."""
    parts = str(e.full_key or "").split(".") if e.full_key else []
    parent, names = schema, parts[:-1]
    for name in names:  # the dataclass holding the offending key (nested groups: task.optim.lr)
        parent = _field_types(parent).get(name, parent)
        parent = next((a for a in typing.get_args(parent) if dataclasses.is_dataclass(a)), parent)
    full = ".".join([key, *parts] if key else parts)  # key "": a top-level setting (seed, threads)
    valid = ", ".join(f.name for f in dataclasses.fields(parent)) if dataclasses.is_dataclass(parent) else "?"
    if isinstance(e, ConfigKeyError):
        return f"{full} is not a key of {getattr(parent, '__name__', key)}; valid keys: {valid}"
    if isinstance(e, KeyValidationError) and typing.get_origin(parent) is dict:  # a dict keyed by choices
        return f"{full}: the key {parts[-1]} is not a choice; use {_type_name(typing.get_args(parent)[0])}"
    if isinstance(e, ValidationError) and parts:
        holder = e.object_type if dataclasses.is_dataclass(e.object_type) else parent
        name = parts[-1].split("[")[0]  # modes[1]: an entry of the list field `modes`
        expected = _type_name(_field_types(holder).get(name, Any))
        found = _locate(OmegaConf.to_container(node), name, e.value) if e.value is not None else None
        if found is not None:  # where the value really is (OmegaConf loses the path inside lists)
            full, value = ".".join([key, found] if key else [found]), e.value
        else:
            value = OmegaConf.select(node, ".".join(parts), default=None, throw_on_missing=False)
        if expected.startswith("one of "):  # a choice (an Enum field)
            quote = f" (a choice that reads as a boolean is quoted: {full}='{str(value).lower()}')" \
                if isinstance(value, bool) else ""
            return f"{full}={value}: use {expected}{quote}"
        return f"{full}={value}: expected {expected} ({str(e).splitlines()[0]})"
    return f"config group '{key}' is malformed: {str(e).splitlines()[0]} (valid keys: {valid})"
