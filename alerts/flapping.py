"""Nagios-style flap detection over a target's last rounds, kept as a bit mask.

A round is one scheduled probe plus its quick re-checks; its outcome is that of its last
result. The history holds the last ``window`` outcomes (bit 0 = newest, 1 = failed); the
weighted state-change ratio counts the transitions between consecutive rounds, newer ones
weighing more (0.75 for the oldest transition up to 1.25 for the newest, as Nagios does),
divided by the number of transitions (window - 1). A target is flapping from the moment
the ratio reaches ``high`` until it falls below ``low`` (hysteresis).
"""

from __future__ import annotations

from functools import lru_cache

LOW_WEIGHT = 0.75
HIGH_WEIGHT = 1.25


@lru_cache(maxsize=16)
def weights(window: int) -> tuple[float, ...]:
    """Weight of transition j (j = 0 is the newest, between rounds 0 and 1)."""
    n = window - 1
    if n <= 1:
        return (1.0,) * max(n, 0)
    return tuple(HIGH_WEIGHT - (HIGH_WEIGHT - LOW_WEIGHT) * j / (n - 1) for j in range(n))


def push(history: int, failed: bool, window: int) -> int:
    """A new round at the newest end."""
    return ((history << 1) | int(failed)) & ((1 << window) - 1)


def amend(history: int, failed: bool) -> int:
    """The current round's outcome changed (a re-check of it came back)."""
    return (history & ~1) | int(failed)


def fill(failed: bool, window: int) -> int:
    """A history with no changes: every round as the first one seen."""
    return (1 << window) - 1 if failed else 0


def change_ratio(history: int, window: int) -> float:
    """Weighted share (0-1) of transitions between consecutive rounds."""
    n = window - 1
    if n <= 0:
        return 0.0
    changes = (history ^ (history >> 1)) & ((1 << n) - 1)
    if not changes:
        return 0.0
    w = weights(window)
    total = 0.0
    while changes:
        low = changes & -changes
        total += w[low.bit_length() - 1]
        changes ^= low
    return total / n


def next_flapping(flapping: bool, ratio: float, high: float, low: float) -> bool:
    """Hysteresis: start at ``high``, stop only below ``low``."""
    if flapping:
        return ratio >= low
    return ratio >= high
