"""FNV-1a 64 over a salt and a trace id: the Collector ``probabilistic`` policy's hash
(``internal/sampling/probabilistic.go``), shared by every random vote in Sieve. Pure."""

from __future__ import annotations

from functools import lru_cache

DEFAULT_HASH_SALT = "default-hash-seed"
MAX_UINT64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = MAX_UINT64


@lru_cache(maxsize=64)
def _salt_state(salt: str) -> int:
    h = _FNV_OFFSET
    for byte in salt.encode():
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def fnv1a64(salt: str, trace_id: int) -> int:
    """FNV-1a 64 of ``salt`` followed by the trace id's 16 big-endian bytes."""
    h = _salt_state(salt)
    for byte in trace_id.to_bytes(16, "big"):
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h
