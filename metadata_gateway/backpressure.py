"""How long a client should wait before a full queue has room again, from how fast it drains."""

from __future__ import annotations

from collections.abc import Iterable

from metadata_gateway.envelope import MAX_ITEM_BYTES, MAX_METADATA_BYTES

DRAIN_SAFETY = 0.85  # calls take time and share the account: promise a little less than the rate
MIN_RETRY_AFTER_S = 0.05


def cues_per_call(average_item_bytes: float) -> int:
    """How many cues of this average size one payload carries."""
    return max(1, int(MAX_ITEM_BYTES // (average_item_bytes + 1)))


def drain_wait(
    *,
    excess_cues: int,
    excess_bytes: int,
    calls_per_s: float,
    average_item_bytes: float,
) -> float:
    """Seconds until a queue sending `calls_per_s` calls has freed this many cues and bytes."""
    rate = max(calls_per_s, 1e-3) * DRAIN_SAFETY
    by_cues = max(0, excess_cues) / (rate * cues_per_call(average_item_bytes))
    by_bytes = max(0, excess_bytes) / (rate * MAX_METADATA_BYTES * 0.9)
    return max(MIN_RETRY_AFTER_S, by_cues, by_bytes)


def expiry_wait(expiries: Iterable[float], excess_cues: int, now: float) -> float:
    """Seconds until enough cues of a channel that cannot send have expired to make room."""
    ordered = sorted(expiries)
    if not ordered:
        return MIN_RETRY_AFTER_S
    index = min(len(ordered), max(1, excess_cues)) - 1
    return max(MIN_RETRY_AFTER_S, ordered[index] - now)
