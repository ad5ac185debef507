"""Pure figures over recorded times and counts: percentiles, windows, rates and fairness."""

from __future__ import annotations

import math
from collections.abc import Sequence

from metadata_gateway.local_ivs.events import max_in_window as max_in_window


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def steady_rate(times: Sequence[float]) -> float | None:
    """Events per second between the first and the last (n - 1 gaps over their span)."""
    ordered = sorted(times)
    if len(ordered) < 2 or ordered[-1] <= ordered[0]:
        return None
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def rate_under_limit(times: Sequence[float], limit: int) -> float | None:
    """Calls per second of a stream held to `limit` per sliding second: `limit` over the mean
    time from each call to the `limit`-th after it, which a burst at the edge cannot skew."""
    ordered = sorted(times)
    gaps = [ordered[i + limit] - ordered[i] for i in range(len(ordered) - limit)]
    if not gaps or sum(gaps) <= 0:
        return None
    return limit * len(gaps) / sum(gaps)


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index: 1.0 when all shares are equal, 1/n when one takes everything."""
    if not values:
        return None
    total = sum(values)
    squares = sum(v * v for v in values)
    return (total * total) / (len(values) * squares) if squares else 1.0


def ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds, rounded to microseconds; None stays None."""
    return None if seconds is None else round(seconds * 1000, 3)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """`round` that lets None through."""
    return None if value is None else round(value, digits)
