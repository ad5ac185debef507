"""The PutMetadata quotas as pure sliding windows, driven by plain numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metadata_gateway.local_ivs.limits import (
    PutMetadataLimiter,
    RateLimits,
    SlidingWindow,
    Verdict,
)


def _offer(window: SlidingWindow, now: float) -> bool:
    if window.allows(now):
        window.record(now)
        return True
    return False


def test_window_refuses_the_sixth_call_inside_one_second() -> None:
    """Five arrivals at 0.0..0.4 fill the window, so one at 0.999 is refused."""
    window = SlidingWindow(5)
    assert [_offer(window, t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)] == [True] * 5
    assert not _offer(window, 0.999)


def test_window_allows_again_once_the_first_arrival_is_a_second_old() -> None:
    """At 1.0001 the arrival at 0.0 has left the window (t-1, t], so a call fits again."""
    window = SlidingWindow(5)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        _offer(window, t)
    assert not _offer(window, 0.999)
    assert _offer(window, 1.0001)
    assert not _offer(window, 1.05)


def test_window_excludes_an_arrival_exactly_one_second_old() -> None:
    """The window is half-open: an arrival at exactly t-1 no longer counts at t."""
    window = SlidingWindow(1)
    assert _offer(window, 0.0)
    assert not _offer(window, 0.5)
    assert _offer(window, 1.0)


def test_refused_calls_do_not_count() -> None:
    """A refused arrival is not recorded, so it does not push the next opening back."""
    window = SlidingWindow(2)
    _offer(window, 0.0)
    _offer(window, 0.5)
    for t in (0.6, 0.7, 0.9):
        assert not _offer(window, t)
    assert window.count(0.9) == 2
    assert _offer(window, 1.01)


def test_window_rejects_a_limit_below_one() -> None:
    """A window that could never allow anything is a configuration error."""
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindow(0)


def test_window_repr_shows_live_count() -> None:
    """The repr shows how full the window is."""
    window = SlidingWindow(5)
    window.record(0.0)
    assert repr(window) == "<SlidingWindow 1/5 per 1s>"


def test_limiter_applies_the_account_quota_across_channels() -> None:
    """With account_rate 3, the fourth call in a second is refused whichever channel it is on."""
    limiter = PutMetadataLimiter(RateLimits(channel_rate=5, account_rate=3))
    verdicts = [limiter.acquire(f"ch{i}", "acct", 0.1 * i) for i in range(3)]
    assert verdicts == [Verdict.ACCEPTED] * 3
    assert limiter.acquire("ch9", "acct", 0.5) is Verdict.ACCOUNT_LIMIT
    assert limiter.acquire("ch9", "other-acct", 0.5) is Verdict.ACCEPTED
    assert limiter.acquire("ch9", "acct", 1.0) is Verdict.ACCEPTED


def test_limiter_channel_refusal_does_not_spend_the_account_quota() -> None:
    """Calls refused by the channel quota leave the account window untouched."""
    limiter = PutMetadataLimiter(RateLimits(channel_rate=1, account_rate=2))
    assert limiter.acquire("a", "acct", 0.0) is Verdict.ACCEPTED
    for t in (0.1, 0.2, 0.3):
        assert limiter.acquire("a", "acct", t) is Verdict.CHANNEL_LIMIT
    assert limiter.acquire("b", "acct", 0.4) is Verdict.ACCEPTED
    assert limiter.acquire("c", "acct", 0.5) is Verdict.ACCOUNT_LIMIT


def test_limiter_account_refusal_does_not_spend_the_channel_quota() -> None:
    """A call the account quota refuses does not count against its channel either."""
    limiter = PutMetadataLimiter(RateLimits(channel_rate=2, account_rate=1))
    assert limiter.acquire("a", "acct", 0.0) is Verdict.ACCEPTED
    assert limiter.acquire("b", "acct", 0.5) is Verdict.ACCOUNT_LIMIT
    assert limiter.acquire("b", "acct", 1.0) is Verdict.ACCEPTED
    assert limiter.acquire("b", "acct", 2.0) is Verdict.ACCEPTED


def test_limiter_forgets_a_deleted_channel() -> None:
    """Forgetting a channel drops its window (a new channel with that ARN starts afresh)."""
    limiter = PutMetadataLimiter(RateLimits(channel_rate=1, account_rate=10))
    assert limiter.acquire("a", "acct", 0.0) is Verdict.ACCEPTED
    limiter.forget("a")
    assert limiter.acquire("a", "acct", 0.1) is Verdict.ACCEPTED


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.6), min_size=1, max_size=60),
)
def test_window_matches_the_definition(limit: int, gaps: list[float]) -> None:
    """A call is accepted iff fewer than `limit` accepted arrivals lie in (t-1, t]."""
    window = SlidingWindow(limit)
    accepted: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        in_window = sum(1 for t in accepted if now - 1.0 < t <= now)
        assert _offer(window, now) is (in_window < limit)
        if in_window < limit:
            accepted.append(now)
