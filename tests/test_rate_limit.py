"""The sliding-window limiter, exactly, with numbers for time."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from metadata_gateway.core.rate_limit import SlidingWindowLimiter


def test_allows_limit_calls_at_once_then_waits_for_the_window() -> None:
    """Five calls may start together; the sixth waits until the first answer is 1 s old."""
    limiter = SlidingWindowLimiter(5)
    calls = [limiter.start(0.0) for _ in range(5)]
    assert limiter.next_allowed(0.0) == math.inf  # all in flight: arrival times unknown
    for call in calls:
        limiter.finish(call, 0.010)
    assert limiter.next_allowed(0.02) == 1.010
    assert limiter.next_allowed(1.010) == 1.010


def test_counts_in_flight_calls_until_answered() -> None:
    """A call in flight might arrive at any moment, so it counts until its answer."""
    limiter = SlidingWindowLimiter(2)
    first, _second = limiter.start(0.0), limiter.start(0.0)
    assert limiter.next_allowed(5.0) == math.inf
    limiter.finish(first, 5.0)
    assert limiter.next_allowed(5.0) == 6.0


def test_margin_adds_spacing() -> None:
    """The margin pushes the next start past the plain window."""
    limiter = SlidingWindowLimiter(1, margin=0.002)
    limiter.finish(limiter.start(0.0), 0.05)
    assert limiter.next_allowed(0.5) == 1.052


def test_window_forgets_old_calls() -> None:
    """Answers more than a window old no longer count."""
    limiter = SlidingWindowLimiter(3)
    for t in (0.0, 0.1, 0.2):
        limiter.finish(limiter.start(t), t)
    assert limiter.recent_calls(1.15) == 1
    assert limiter.next_allowed(1.15) == 1.15


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 6),
    gaps=st.lists(st.floats(0, 0.6), min_size=1, max_size=40),
    latencies=st.lists(st.floats(0, 0.8), min_size=40, max_size=40),
    arrival_share=st.lists(st.floats(0, 1), min_size=40, max_size=40),
)
def test_no_window_ever_holds_more_than_limit_arrivals(
    limit: int, gaps: list[float], latencies: list[float], arrival_share: list[float]
) -> None:
    """For any latency and any arrival inside [start, answer], no 1 s window sees > limit."""
    limiter = SlidingWindowLimiter(limit)
    now = 0.0
    arrivals: list[float] = []
    open_calls: list[tuple[float, float, object]] = []
    for i, gap in enumerate(gaps):
        now += gap
        for end, arrival, call in [c for c in open_calls if c[0] <= now]:
            limiter.finish(call, end)  # type: ignore[arg-type]
            arrivals.append(arrival)
            open_calls.remove((end, arrival, call))
        allowed = limiter.next_allowed(now)
        if allowed == math.inf:
            # Wait for the earliest answer, as the scheduler does.
            end, arrival, call = min(open_calls, key=lambda c: c[0])
            now = max(now, end)
            limiter.finish(call, end)  # type: ignore[arg-type]
            arrivals.append(arrival)
            open_calls.remove((end, arrival, call))
            allowed = limiter.next_allowed(now)
        now = max(now, allowed)
        call = limiter.start(now)
        end = now + latencies[i]
        open_calls.append((end, now + (end - now) * arrival_share[i], call))
    arrivals.extend(a for _, a, _ in open_calls)
    arrivals.sort()
    for i in range(len(arrivals) - limit):
        assert arrivals[i + limit] - arrivals[i] >= 1.0 - 1e-9
