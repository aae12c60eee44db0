"""The backoff schedule: pure, with the random draw injected."""

from __future__ import annotations

import pytest

from pipeline.export.postgres.backoff import Backoff


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0)
    assert [backoff.ceiling_s(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_equal_jitter_draws_from_the_upper_half_of_the_ceiling() -> None:
    backoff = Backoff(base_s=0.1, max_s=10.0)
    assert backoff.delay_s(3, 0.0) == pytest.approx(0.2)
    assert backoff.delay_s(3, 0.5) == pytest.approx(0.3)
    assert backoff.delay_s(3, 1.0) == pytest.approx(0.4)


def test_a_very_long_outage_does_not_overflow() -> None:
    assert Backoff(base_s=0.1, max_s=30.0).delay_s(10_000, 0.99) <= 30.0


@pytest.mark.parametrize(("attempt", "draw"), [(0, 0.5), (1, -0.1), (1, 1.5)])
def test_rejects_out_of_range_inputs(attempt: int, draw: float) -> None:
    with pytest.raises(ValueError, match=r"attempt is 1-based|draw must be in"):
        Backoff(0.1, 1.0).delay_s(attempt, draw)


def test_rejects_an_inverted_range() -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(base_s=2.0, max_s=1.0)
