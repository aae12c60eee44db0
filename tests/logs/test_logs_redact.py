"""Redaction rules: which keys and which parts of a message are masked, and which are left alone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from collectors.logs import RecordSampler, Redactor
from pipeline.sampling.logs import LogSampler


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sent op=stream_chunk size=123", "sent op=stream_chunk size=123"),
        ("token=abc123 next", "token=[REDACTED] next"),
        ("access_token=abc; x=1", "access_token=[REDACTED]; x=1"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: [REDACTED]"),
        ("curl -H 'authorization: Basic dXNlcjpwYXNz'", "curl -H 'authorization: [REDACTED]'"),
        ('{"prompt": "tell me \\"everything\\"", "n": 1}', '{"prompt": "[REDACTED]", "n": 1}'),
        ("{'content': 'hello there'}", "{'content': '[REDACTED]'}"),
        ("JWT=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "JWT=[REDACTED]"),
        ("bare eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "bare [REDACTED]"),
        ("key sk-abcdefghijklmnop1234 used", "key [REDACTED] used"),
        ("X-Api-Key: 42", "X-Api-Key: 42"),  # api-key is not api_key: configure it if your headers use it
        ("api_key=42", "api_key=[REDACTED]"),
        ("tokens_used=5 content_length=9 mytoken=3", "tokens_used=5 content_length=9 mytoken=3"),
        ("", ""),
    ],
)
def test_default_rules(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


def test_extra_keys_nested_and_skipped() -> None:
    redactor = Redactor(skip_keys=("trace_id",))
    extra: dict[str, Any] = {
        "trace_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",  # skipped: our own keys are never touched
        "Session_Token": "abc",
        "headers": {"Authorization": "x", "accept": "json", "deeper": {"password": "p"}},
        "note": "Bearer abcdef",
        "count": 3,
    }
    nested = extra["headers"]
    redactor.extra(extra)
    assert extra == {
        "trace_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "Session_Token": "[REDACTED]",
        "headers": {"Authorization": "[REDACTED]", "accept": "json", "deeper": {"password": "[REDACTED]"}},
        "note": "[REDACTED]",
        "count": 3,
    }
    assert nested["Authorization"] == "x"  # a bound dict shared by other records is copied, not mutated


def test_custom_fields_patterns_and_mask() -> None:
    redactor = Redactor(fields=("ssn",), patterns=(r"(?i)card-\d+",), mask="#")
    assert redactor.text("ssn=1 CARD-42 token=t") == "ssn=# # token=t"
    assert Redactor(fields=(), patterns=()).text("token=t") == "token=t"


def test_a_bad_pattern_fails_at_construction() -> None:
    with pytest.raises(re.error, match=r"missing \)"):
        Redactor(patterns=("(unclosed",))


def test_the_sampler_satisfies_the_bridge_protocol() -> None:
    sampler: RecordSampler = LogSampler()  # checked by mypy; at run time, the methods exist
    assert callable(sampler.category("X").decide) and callable(sampler.attach) and callable(sampler.observe)
