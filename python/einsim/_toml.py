"""A small TOML writer for the shapes einsim's spec files take: top-level values, tables of
values, and values that are strings, numbers, booleans, lists or inline tables. Enough to
write a sweep or scenario spec from a dict; not a general TOML serialiser."""

from __future__ import annotations

import json
from typing import Any, Mapping


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: the same escapes as JSON
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write a {type(v).__name__} as a TOML value: {v!r}")


def _key(k: str) -> str:
    k = str(k)
    return k if k and all(c.isalnum() or c in "-_" for c in k) else json.dumps(k)


def dumps(doc: Mapping[str, Any]) -> str:
    """``doc`` as TOML: its non-table values first, then one [table] per dict value (a dict
    inside a table is written inline)."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, Mapping)]
    for k, v in doc.items():
        if isinstance(v, Mapping):
            lines.append("")
            lines.append(f"[{_key(k)}]")
            lines += [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
