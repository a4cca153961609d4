"""Changing a few keys of a technician's TOML file without rewriting the rest of it.

`doorctl enroll` sets the door's identity, broker and keys; the wiring, the readers and every comment
the technician wrote stay as they were. Line-based: a key's line in its table is replaced (its
trailing comment kept), a missing key is added at the end of its table, a missing table at the end
of the file, and a table given whole (`credentials.keys`) replaces the one there. The result is
parsed again and must hold exactly the values asked for, or `EditProblem` says why.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from typing import Any

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"^(\s*)([A-Za-z0-9_\-]+)\s*=")


class EditProblem(ValueError):
    pass


def toml_value(value: Any) -> str:
    """A TOML literal for a string, a bool, a number or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EditProblem(f"{value} has no TOML form here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise EditProblem(f"{type(value).__name__} has no TOML form here")


def _tables(lines: list[str]) -> list[tuple[str | None, int, int]]:
    """(table name, first line, end line) for the top (None) and every table header, in order."""
    found: list[tuple[str | None, int]] = [(None, 0)]
    for i, line in enumerate(lines):
        m = _HEADER_RE.match(line)
        if m:
            name = m.group(2) if m.group(1) == "[" else f"[[{m.group(2)}]]"
            found.append((name, i))
    return [(name, start, found[n + 1][1] if n + 1 < len(found) else len(lines))
            for n, (name, start) in enumerate(found)]


def _value_end(lines: list[str], i: int, end: int) -> int:
    """The line after a key's value (a multi-line array runs until it parses)."""
    for j in range(i + 1, end + 1):
        try:
            tomllib.loads("".join(lines[i:j]))
            return j
        except tomllib.TOMLDecodeError:
            continue
    return i + 1


def edit(text: str, keys: Mapping[str, Mapping[str, Any]],
         whole: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """`text` with `keys` ({table: {key: value}}) set, and each table of `whole` replaced entirely."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for table, name_values in (whole or {}).items():
        lines = _replace_table(lines, table, name_values)
    for table, values in keys.items():
        for key, value in values.items():
            lines = _set(lines, table, key, value)
    result = "".join(lines)
    try:
        doc = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:
        raise EditProblem(f"the edited file would not be TOML ({exc})") from None
    for table, values in {**keys, **(whole or {})}.items():
        got = _lookup(doc, table)
        for key, value in values.items():
            if not isinstance(got, dict) or got.get(key) != value:
                raise EditProblem(f"{table}.{key}: did not take the value {value!r}")
        if whole and table in whole and isinstance(got, dict) and set(got) != set(values):
            raise EditProblem(f"{table}: holds other keys than the ones given")
    return result


def _lookup(doc: dict[str, Any], table: str) -> Any:
    node: Any = doc
    for part in table.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _set(lines: list[str], table: str, key: str, value: Any) -> list[str]:
    literal = toml_value(value)
    for name, start, end in _tables(lines):
        if name != table:
            continue
        first = start + 1 if name is not None else 0
        for i in range(first, end):
            m = _KEY_RE.match(lines[i])
            if m and m.group(2) == key:
                stop = _value_end(lines, i, end)
                comment = _trailing_comment(lines[stop - 1]) if stop == i + 1 else ""
                lines[i:stop] = [f"{m.group(1)}{key} = {literal}{comment}\n"]
                return lines
        # Not there: after the table's last key (before the blank lines and comments that lead on).
        last = start
        for i in range(first, end):
            if _KEY_RE.match(lines[i]):
                last = _value_end(lines, i, end) - 1
        lines.insert(last + 1, f"{key} = {literal}\n")
        return lines
    tail = [] if not lines or lines[-1].strip() == "" else ["\n"]
    return [*lines, *tail, f"[{table}]\n", f"{key} = {literal}\n"]


def _trailing_comment(line: str) -> str:
    """The ` # ...` after a one-line value, if any (a # inside a string is not one)."""
    body = line.rstrip("\n")
    in_string: str | None = None
    escaped = False
    for i, ch in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\" and in_string == '"':
                escaped = True
            elif ch == in_string:
                in_string = None
        elif ch in "\"'":
            in_string = ch
        elif ch == "#":
            start = i
            while start > 0 and body[start - 1] in " \t":
                start -= 1
            return body[start:]
    return ""


def _replace_table(lines: list[str], table: str, values: Mapping[str, Any]) -> list[str]:
    block = [f"[{table}]\n", *(f"{_key(k)} = {toml_value(v)}\n" for k, v in values.items())]
    for name, start, end in _tables(lines):
        if name == table:
            # Keep the comment lines of the old table (they explain it); drop its keys.
            kept = [line for line in lines[start + 1:end] if not _KEY_RE.match(line)
                    and not line.strip().startswith(("\"", "'"))]
            comments = [line for line in kept if line.strip().startswith("#")]
            trailing = [line for line in kept if line.strip() == ""][:1]
            return [*lines[:start], block[0], *comments, *block[1:], *trailing, *lines[end:]]
    tail = [] if not lines or lines[-1].strip() == "" else ["\n"]
    return [*lines, *tail, *block]


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else json.dumps(key, ensure_ascii=False)
