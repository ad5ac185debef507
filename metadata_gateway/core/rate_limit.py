"""A sliding-window limiter that holds as the server sees arrivals, whatever the network does.

IVS counts calls by when they reach it, which we never observe: a call that starts at `s` and
is answered at `e` arrived somewhere in [s, e]. So a new call may start at `t` only if fewer
than `limit` earlier calls could have arrived in (t - window, t], that is, fewer than `limit`
have an answer time after `t - window` (a call still in flight counts, its arrival unknown).
Any `limit + 1` calls then arrive at least `window` apart, for any latency or jitter. A token
bucket with burst = rate lets 2x through in one window; this does not.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

WINDOW_S = 1.0  # IVS quotas are per second


@dataclass(slots=True)
class Call:
    """A call the limiter has admitted; `ended` stays None while it is in flight."""

    started: float
    ended: float | None = None


class SlidingWindowLimiter:
    """At most `limit` calls in any `window` seconds, counted by possible arrival time."""

    __slots__ = ("_ends", "_hold_until", "_in_flight", "limit", "margin", "window")

    def __init__(self, limit: int, *, window: float = WINDOW_S, margin: float = 0.0) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self.margin = margin  # extra spacing, for a server clock that may run a little ahead
        self._ends: list[float] = []  # answer times of finished calls that may still count, sorted
        self._in_flight = 0
        self._hold_until = 0.0

    def __repr__(self) -> str:
        return (
            f"<SlidingWindowLimiter limit={self.limit} recent={len(self._ends)} "
            f"in_flight={self._in_flight}>"
        )

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet answered."""
        return self._in_flight

    def hold(self, until: float) -> None:
        """Admit nothing before `until`: calls we did not record may still fill the window."""
        self._hold_until = max(self._hold_until, until)

    def next_allowed(self, now: float) -> float:
        """The earliest time at or after `now` a call may start; `inf` until a call is answered."""
        if now < self._hold_until:
            return self._hold_until
        self._prune(now)
        excess = len(self._ends) + self._in_flight - self.limit + 1
        if excess <= 0:
            return now

        if excess > len(self._ends):
            return math.inf
        return max(now, self._ends[excess - 1] + self.window + self.margin)

    def start(self, now: float) -> Call:
        """Admit a call at `now`; the caller must have checked `next_allowed(now) <= now`."""
        self._in_flight += 1
        return Call(started=now)

    def finish(self, call: Call, now: float) -> None:
        """Record that `call` was answered (or failed) at `now`."""
        if call.ended is not None:
            return
        call.ended = now
        self._in_flight -= 1
        bisect.insort(self._ends, now)

    def abandon(self, call: Call) -> None:
        """Forget an admitted call that was never sent (another limiter said not now)."""
        if call.ended is not None:
            return
        call.ended = call.started
        self._in_flight -= 1

    def recent_calls(self, now: float) -> int:
        """Calls that may still count against the window at `now`, in flight included."""
        self._prune(now)
        return len(self._ends) + self._in_flight

    def _prune(self, now: float) -> None:
        cutoff = now - self.window - self.margin
        ends = self._ends
        drop = bisect.bisect_right(ends, cutoff)
        if drop:
            del ends[:drop]
