"""Sets of a trace's uniform for which a policy keeps it: the arithmetic behind exact keep probabilities.

Every random vote in Sieve is a threshold on one per-trace uniform ``u`` in [0, 1) (the Collector's FNV-1a hash of
the trace id, see :mod:`pipeline.sampling.policies.hashing`): a policy votes "sampled" iff ``u`` falls in its
*region*, a union of half-open intervals fixed by the trace's content and the sampler's history - never by ``u``
itself. Deterministic filters have the region ``FULL`` (matched) or ``EMPTY``. Combining votes is then set algebra
(``and`` = intersection, ``not`` = complement, any-of = union, "first that matches" = difference), and the
probability that the whole policy set keeps a trace is the measure of the resulting set: exact by construction.

A region is a sorted tuple of disjoint ``(lo, hi)`` pairs with ``0 <= lo < hi <= 1``. Pure functions only.
"""

from __future__ import annotations

Region = tuple[tuple[float, float], ...]

FULL: Region = ((0.0, 1.0),)
EMPTY: Region = ()


def below(p: float) -> Region:
    """``u < p``: the region of a plain threshold vote."""
    if p <= 0.0:
        return EMPTY
    if p >= 1.0:
        return FULL
    return ((0.0, p),)


def measure(region: Region) -> float:
    """The probability that ``u`` falls in ``region``."""
    return min(1.0, sum(hi - lo for lo, hi in region))


def contains(region: Region, u: float) -> bool:
    return any(lo <= u < hi for lo, hi in region)


def _normalise(pairs: list[tuple[float, float]]) -> Region:
    pairs = sorted((max(0.0, lo), min(1.0, hi)) for lo, hi in pairs if hi > lo)
    out: list[tuple[float, float]] = []
    for lo, hi in pairs:
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def union(*regions: Region) -> Region:
    if len(regions) == 1:
        return regions[0]
    return _normalise([pair for region in regions for pair in region])


def intersect(a: Region, b: Region) -> Region:
    if a == FULL:
        return b
    if b == FULL:
        return a
    out: list[tuple[float, float]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def complement(region: Region) -> Region:
    out: list[tuple[float, float]] = []
    position = 0.0
    for lo, hi in region:
        if lo > position:
            out.append((position, lo))
        position = hi
    if position < 1.0:
        out.append((position, 1.0))
    return tuple(out)


def difference(a: Region, b: Region) -> Region:
    return intersect(a, complement(b))


def prefix(region: Region, fraction: float) -> Region:
    """The first ``fraction`` of ``region``'s measure, from below: thins a vote to ``fraction`` of its keeps while
    staying a set of the same uniform (so the thinned vote nests inside the original one)."""
    if fraction >= 1.0:
        return region
    wanted = measure(region) * max(0.0, fraction)
    out: list[tuple[float, float]] = []
    for lo, hi in region:
        if wanted <= 0.0:
            break
        take = min(hi - lo, wanted)
        out.append((lo, lo + take))
        wanted -= take
    return tuple(out)
