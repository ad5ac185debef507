"""IVS's PutMetadata rate quotas as sliding one-second windows over accepted arrival times."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

# IVS counts requests per second; a window of exactly one second matches "N requests/s".
WINDOW_SECONDS = 1.0


class SlidingWindow:
    """At most `limit` accepted arrivals in any window `(t - window, t]`; times never decrease."""

    __slots__ = ("_arrivals", "limit", "window")

    def __init__(self, limit: int, *, window: float = WINDOW_SECONDS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        self.limit = limit
        self.window = window
        self._arrivals: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<SlidingWindow {len(self._arrivals)}/{self.limit} per {self.window:g}s>"

    def _forget_before(self, now: float) -> None:
        horizon = now - self.window
        arrivals = self._arrivals
        while arrivals and arrivals[0] <= horizon:
            arrivals.popleft()

    def count(self, now: float) -> int:
        """Return how many accepted arrivals lie in `(now - window, now]`."""
        self._forget_before(now)
        return len(self._arrivals)

    def allows(self, now: float) -> bool:
        """Return whether an arrival at `now` would fit under the limit."""
        return self.count(now) < self.limit

    def record(self, now: float) -> None:
        """Count an accepted arrival at `now`."""
        self._arrivals.append(now)

    def is_idle(self, now: float) -> bool:
        """Return whether no arrival counts any more at `now`, so the window can be dropped."""
        return self.count(now) == 0


class Verdict(Enum):
    """The outcome of asking the limiter about one PutMetadata call."""

    ACCEPTED = "accepted"
    CHANNEL_LIMIT = "channel"
    ACCOUNT_LIMIT = "account"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """PutMetadata calls per second allowed per channel and per account (IVS: 5 and 155)."""

    channel_rate: int
    account_rate: int


class PutMetadataLimiter:
    """Both PutMetadata quotas, a window per channel and per account; refusals count in neither."""

    __slots__ = ("_accounts", "_channels", "limits")

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._channels: dict[str, SlidingWindow] = {}
        self._accounts: dict[str, SlidingWindow] = {}

    def __repr__(self) -> str:
        return (
            f"<PutMetadataLimiter channel_rate={self.limits.channel_rate}"
            f" account_rate={self.limits.account_rate} channels={len(self._channels)}>"
        )

    def acquire(self, channel: str, account: str, now: float) -> Verdict:
        """Accept and count a call on `channel` of `account` at `now`, or name the quota hit."""
        channel_window = self._channels.get(channel)
        if channel_window is None:
            channel_window = self._channels[channel] = SlidingWindow(self.limits.channel_rate)
        account_window = self._accounts.get(account)
        if account_window is None:
            account_window = self._accounts[account] = SlidingWindow(self.limits.account_rate)
        if not channel_window.allows(now):
            return Verdict.CHANNEL_LIMIT
        if not account_window.allows(now):
            return Verdict.ACCOUNT_LIMIT
        channel_window.record(now)
        account_window.record(now)
        return Verdict.ACCEPTED

    def forget(self, channel: str) -> None:
        """Drop the window of a deleted channel."""
        self._channels.pop(channel, None)
