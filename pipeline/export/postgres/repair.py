"""Make any row encodable: the sink's JSON must be valid UTF-8 that Postgres ``jsonb`` and ``text`` accept.

Strings reach the sink from span names and attributes, status messages, resource and metric attributes and event
payloads, i.e. from anyone. Three things in them break a write (or, worse, the spool line of a whole batch):

* **Lone surrogates** (``"\\ud800"``): a Python ``str`` may hold them (``surrogateescape`` decoding, JSON with a
  lone ``\\ud800`` escape, C extensions), UTF-8 cannot. A *pair* of surrogate code points is joined into the
  character it stands for; a lone one becomes U+FFFD REPLACEMENT CHARACTER, as every UTF-8 decoder does.
* **NUL** (``"\\x00"``): Postgres ``text`` cannot hold it and ``jsonb`` rejects the ``\\u0000`` escape. It is
  *escaped*, not stripped: it becomes the six visible characters ``\\u0000``, so a reader sees that and where a NUL
  was (stripping would silently join its neighbours).
* **Values JSON has no form for**: NaN and infinities become strings (``"nan"``, ``"inf"``, like attribute
  values), bytes become hex, keys become strings, any other object its ``str()`` (or ``<unprintable T>`` when
  even that raises), and nesting deeper than ``MAX_DEPTH`` (or a cycle) its ``str()``.

The common case costs one ``json.dumps`` of the batch and a strict UTF-8 encode: only a batch that fails that
check is walked row by row, and only the rows that need it are rebuilt.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 32
NUL_ESCAPE = "\\u0000"  # the six characters a NUL becomes
# How json.dumps writes a NUL: a ``\u0000`` escape whose backslash is not itself escaped (``\\u0000`` is the
# harmless text "backslash, u0000").
_NUL_ESCAPE_IN_JSON = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (pairs joined) and NUL escaped; the same object when clean."""
    if "\x00" in text:
        text = text.replace("\x00", NUL_ESCAPE)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 round trip: a surrogate pair decodes to its character, a lone surrogate to U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_value(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: only dicts with string keys, lists, clean strings, finite numbers, bools,
    None."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return clean_text(_safe_str(value))
    if isinstance(value, Mapping):
        return {_key(k): clean_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean_value(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return clean_text(_safe_str(value))


def is_clean(obj: Any) -> bool:
    """Does ``obj`` dump to JSON that Postgres takes as it is? (strict JSON, UTF-8 encodable, no NUL escape)"""
    try:
        # default=str as in encode.dumps: a datetime or a Decimal in an event payload is fine as its str().
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
        text.encode("utf-8")
    except Exception:  # UnicodeEncodeError, NaN (ValueError), odd keys (TypeError), cycles, a raising __str__
        return False
    return "\\u0000" not in text or _NUL_ESCAPE_IN_JSON.search(text) is None


@dataclass
class Repaired:
    """A batch made encodable: its rows, how many were rebuilt, and which could not be."""

    rows: list[dict[str, Any]]
    repaired: int = 0  # rows rebuilt by clean_value
    unencodable: list[int] = field(default_factory=list)  # indexes of rows that could not be made clean


def repair_rows(rows: list[dict[str, Any]]) -> Repaired:
    """The batch with every row encodable. Rows that need no change are kept as they are (same objects)."""
    if is_clean(rows):
        return Repaired(rows)
    out: list[dict[str, Any]] = []
    result = Repaired(out)
    for index, row in enumerate(rows):
        if is_clean(row):
            out.append(row)
            continue
        try:
            fixed = clean_value(row)
        except Exception:  # a mapping whose iteration raises: nothing to salvage
            fixed = None
        if isinstance(fixed, dict) and is_clean(fixed):
            out.append(fixed)
            result.repaired += 1
        else:
            result.unencodable.append(index)
    return result


def _key(key: Any) -> str:
    return clean_text(key if isinstance(key, str) else _safe_str(key))


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
