"""Masking of secrets and message content before a log record leaves the process.

Applied once, in the bridge's patcher, so every sink (console, file, OpenTelemetry) sees the same masked record:

* ``record["extra"]`` keys named like a sensitive field (``token``, ``access_token``, ``X-Api-Key``...) have
  their value replaced, recursively through nested dicts; other string values go through the patterns;
* the message: ``field=value``, ``field: value`` and ``"field": "value"`` for the same field names, then the
  regular expressions (bearer tokens, JWTs, API keys).

A field name matches a whole key, or the last part of one after ``_`` or ``-`` (``access_token`` matches
``token``; ``tokens_used`` and ``content_length`` do not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

DEFAULT_FIELDS: tuple[str, ...] = (
    "token", "jwt", "authorization", "prompt", "content", "password", "secret", "api_key", "apikey", "cookie",
)  # fmt: skip
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*",  # Authorization: Bearer <token>
    r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # a JWT (base64url JSON header and payload)
    r"\bsk-[A-Za-z0-9_-]{16,}",  # provider API keys
)
DEFAULT_MASK = "[REDACTED]"
# A quoted value, an HTTP auth scheme with its credentials (``Authorization: Bearer x``), or a bare word.
_VALUE = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|(?:bearer|basic|digest)\s+[^\s,;&}\]\"']+|[^\s,;&}\]\"']+"
# A literal (lowercase) that every match of a default pattern contains: the cheap pre-check looks for these.
_HINTS = {DEFAULT_PATTERNS[0]: "bearer", DEFAULT_PATTERNS[1]: "eyj", DEFAULT_PATTERNS[2]: "sk-"}
_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")
_MAX_CACHED_KEYS = 1024


def _scoped(pattern: str) -> str:
    """``(?i)rest`` -> ``(?i:rest)``: leading global flags become scoped, so patterns can be joined with ``|``."""
    match = _LEADING_FLAGS.match(pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end() :]})"
    return f"(?:{pattern})"


class Redactor:
    """Masks configured fields and patterns; ``text()`` for strings, ``extra()`` for ``record["extra"]``."""

    def __init__(
        self,
        fields: Iterable[str] = DEFAULT_FIELDS,
        patterns: Iterable[str] = DEFAULT_PATTERNS,
        mask: str = DEFAULT_MASK,
        *,
        skip_keys: Iterable[str] = (),
    ) -> None:
        names = [f for f in fields if f]
        patterns = tuple(patterns)
        self.mask = mask
        self._skip = frozenset(skip_keys)
        self._keys: dict[str, bool] = {}
        branches = [_scoped(p) for p in patterns]
        for p in branches:
            re.compile(p)  # a bad pattern fails here, alone, with its own error message
        self._key: re.Pattern[str] | None = None
        if names:
            alternatives = "|".join(re.escape(f) for f in names)
            self._key = re.compile(rf"(?:[\w.-]*[_-])?(?:{alternatives})", re.IGNORECASE)
            # A field name not glued to a preceding letter or digit (``access_token`` yes, ``mytoken`` no) and not
            # continued (``tokens`` no), an optional closing quote, a separator, then the value (quoted or bare).
            pair = rf"(?i:(?<![A-Za-z0-9])(?P<_sk>(?:{alternatives})(?![\w-])[\"']?\s*[:=]\s*)(?P<_sv>{_VALUE}))"
            branches.insert(0, pair)
        # One pass over the text for every pattern, and only when a case-sensitive search of the lowercased text
        # finds a field name or a pattern's hint (an IGNORECASE scan costs ~3 us even on a clean message).
        self._combined = re.compile("|".join(branches)) if branches else None
        hints = [f.lower() for f in names]
        self._precheck: re.Pattern[str] | None = None
        if all(p in _HINTS for p in patterns):  # a pattern without a known hint: always run the full pass
            hints += [_HINTS[p] for p in patterns]
            self._precheck = re.compile("|".join(re.escape(h) for h in hints)) if hints else None

    def sensitive_key(self, key: str) -> bool:
        """Whether a key of ``record["extra"]`` names a sensitive field (cached: keys come from code)."""
        known = self._keys.get(key)
        if known is None:
            known = self._key is not None and self._key.fullmatch(key) is not None
            if len(self._keys) < _MAX_CACHED_KEYS:
                self._keys[key] = known
        return known

    def text(self, text: str) -> str:
        """``text`` with every pattern and ``field=value`` pair masked."""
        if not text or self._combined is None:
            return text
        if self._precheck is not None and self._precheck.search(text.lower()) is None:
            return text
        return self._combined.sub(self._replace, text)

    def extra(self, extra: dict[str, Any]) -> None:
        """Mask sensitive keys and patterns in ``extra`` in place (nested mappings are copied, not mutated)."""
        for key, value in extra.items():
            if key in self._skip:
                continue
            extra[key] = self._value(key, value, 0)

    def _value(self, key: Any, value: Any, depth: int) -> Any:
        if isinstance(key, str) and self.sensitive_key(key):
            return self.mask
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict) and depth < 4:  # dict, not Mapping: an ABC check costs ~0.3 us
            return {k: self._value(k, v, depth + 1) for k, v in value.items()}
        return value

    def _replace(self, match: re.Match[str]) -> str:
        value = match.group("_sv") if self._key is not None else None
        if value is None:
            return self.mask
        quote = value[0] if value[0] in "\"'" else ""
        return f"{match.group('_sk')}{quote}{self.mask}{quote}"
