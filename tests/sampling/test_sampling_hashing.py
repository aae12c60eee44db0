"""The Collector-compatible hash and threshold, bit for bit."""

from __future__ import annotations

import random
import subprocess
import sys

from pipeline.sampling.fnv import _salt_state
from pipeline.sampling.policies.hashing import (
    DEFAULT_HASH_SALT,
    MAX_UINT64,
    collector_threshold,
    fnv1a64,
)


def _fnv_reference(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) % (1 << 64)
    return h


def test_fnv1a64_known_vectors() -> None:
    assert _salt_state("") == 0xCBF29CE484222325
    assert _salt_state("a") == 0xAF63DC4C8601EC8C
    assert _salt_state("foobar") == 0x85944171F73967E8


def test_fnv_over_salt_then_trace_id_bytes() -> None:
    rng = random.Random(7)
    for _ in range(200):
        trace_id = rng.getrandbits(128)
        expected = _fnv_reference(DEFAULT_HASH_SALT.encode() + trace_id.to_bytes(16, "big"))
        assert fnv1a64(DEFAULT_HASH_SALT, trace_id) == expected


def test_threshold_like_go_big_float() -> None:
    assert collector_threshold(0.0) == 0
    assert collector_threshold(1.0) == MAX_UINT64
    assert collector_threshold(2.0) == MAX_UINT64
    assert collector_threshold(0.5) == (1 << 63) - 1  # 2^63 - 0.5 rounds to even in 64 bits, then truncates
    assert collector_threshold(0.1) == 1844674407370955263
    assert abs(collector_threshold(0.25) - MAX_UINT64 // 4) <= 1


def test_same_decisions_in_another_process() -> None:
    rng = random.Random(9)
    ids = [rng.getrandbits(128) for _ in range(50)]
    code = (
        "import sys; from pipeline.sampling.policies.hashing import fnv1a64, collector_threshold;"
        f"print([fnv1a64('s', t) <= collector_threshold(0.3) for t in {ids!r}])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = [fnv1a64("s", t) <= collector_threshold(0.3) for t in ids]
    assert out.strip() == str(here)
