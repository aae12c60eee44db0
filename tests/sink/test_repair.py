"""The total encoder: every string and value a row can hold becomes JSON that Postgres' jsonb and text take."""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.export.postgres.encode import dumps
from pipeline.export.postgres.repair import MAX_DEPTH, NUL_ESCAPE, clean_text, clean_value, is_clean, repair_rows


def postgres_would_take(text: str) -> bool:
    """What jsonb refuses: invalid UTF-8, NaN/Infinity tokens, and a \\u0000 escape."""
    text.encode("utf-8")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    return is_clean(json.loads(text))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("lone \ud800 high", "lone \ufffd high"),
        ("lone \udfff low", "lone \ufffd low"),
        ("pair \ud83d\ude00 joined", "pair \U0001f600 joined"),
        ("reversed \ude00\ud83d", "reversed \ufffd\ufffd"),
        ("nul\x00inside", "nul\\u0000inside"),
        ("\x00\ud800", "\\u0000\ufffd"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    clean_text(raw).encode("utf-8")


def test_clean_text_returns_the_same_object_when_there_is_nothing_to_do() -> None:
    text = "déjà vu \U0001f600"
    assert clean_text(text) is text


def test_a_literal_backslash_u0000_is_text_not_a_nul() -> None:
    row = {"s": "C:\\u0000 is a path"}
    assert is_clean(row)
    assert repair_rows([row]).rows == [row] and repair_rows([row]).repaired == 0
    assert not is_clean({"s": "a\\\x00"})  # a backslash followed by a real NUL


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_clean_value_makes_anything_json() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    value = {
        "nan": math.nan,
        "inf": -math.inf,
        "bytes": b"\x00\xff",
        "tuple": (1, "\ud800"),
        "set": {3},
        (1, 2): "tuple key",
        7: "int key",
        "\ud800key": "surrogate key",
        "obj": Unprintable(),
        "date": date(2026, 1, 2),
        "dec": Decimal("1.5"),
        "cyclic": cyclic,
    }
    cleaned = clean_value(value)
    assert cleaned["nan"] == "nan" and cleaned["inf"] == "-inf"
    assert cleaned["bytes"] == "00ff" and cleaned["tuple"] == [1, "\ufffd"] and cleaned["set"] == [3]
    assert cleaned["(1, 2)"] == "tuple key" and cleaned["7"] == "int key" and cleaned["\ufffdkey"] == "surrogate key"
    assert cleaned["obj"] == "<unprintable Unprintable>"
    assert cleaned["date"] == "2026-01-02" and cleaned["dec"] == "1.5"
    assert is_clean(cleaned)


def test_nesting_is_cut_at_max_depth() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH * 3):
        deep = [deep]
    assert is_clean(clean_value(deep))


def test_repair_rows_keeps_clean_rows_as_they_are_and_counts_the_repaired() -> None:
    good = {"a": 1, "s": "ok"}
    rows = [good, {"a": "\ud800"}, {"a": "x\x00y"}, {"a": math.nan}, {"a": date(2026, 1, 1)}]
    result = repair_rows(rows)
    assert result.rows[0] is good
    assert [r["a"] for r in result.rows[1:4]] == ["\ufffd", "x" + NUL_ESCAPE + "y", "nan"]
    # A date is fine as it is (dumps writes its str(), as it always did): kept, not counted as repaired.
    assert result.rows[4] is rows[4]
    assert result.repaired == 3 and result.unencodable == []
    assert postgres_would_take(dumps(result.rows))


def test_a_clean_batch_is_returned_untouched() -> None:
    rows = [{"i": i, "s": "é"} for i in range(100)]
    result = repair_rows(rows)
    assert result.rows is rows and result.repaired == 0


def test_dumps_never_writes_nan_or_infinity() -> None:
    assert json.loads(dumps({"x": math.nan, "y": [math.inf]})) == {"x": "nan", "y": ["inf"]}


# Any text, lone surrogates and NUL included (Hypothesis leaves out surrogates unless told).
ANY_TEXT = st.text(st.characters(exclude_categories=()))
ANY_VALUE = st.recursive(
    ANY_TEXT | st.floats() | st.integers() | st.booleans() | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(ANY_VALUE)
def test_any_value_repairs_to_something_postgres_takes(value: Any) -> None:
    result = repair_rows([{"v": value}])
    assert result.unencodable == []
    assert postgres_would_take(dumps(result.rows))
