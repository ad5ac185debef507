"""Admission with plain numbers: bounds, `queue_full` and the `Retry-After` it promises."""

from __future__ import annotations

import pytest

from metadata_gateway.core.admission import (
    BURST_SLACK_S,
    DRAIN_SAFETY,
    MIN_RETRY_AFTER_S,
    Bound,
    ChannelLoad,
    channel_full,
    channel_wait,
    connection_full,
    cues_per_call,
    drain_wait,
    expiry_wait,
    process_full,
    share_of_calls,
    shutting_down,
)

NOW = 1000.0


def _load(**changes: object) -> ChannelLoad:
    values: dict[str, object] = {
        "waiting": 10,
        "pending_bytes": 1000,
        "pending_calls": 10,
        "live": True,
        "backoff_until": 0.0,
        "next_allowed": NOW,
        "calls_per_s": 1.0,
    }
    values.update(changes)
    return ChannelLoad(**values)  # type: ignore[arg-type]


def test_a_bound_reports_nothing_while_cues_fit() -> None:
    """Held plus added cues and bytes at the bound exactly still fit."""
    assert Bound(10, 100).excess((5, 50), (5, 50)) is None


def test_a_bound_reports_the_excess_of_cues_and_bytes() -> None:
    """One cue or one byte over is an excess, and both are reported."""
    assert Bound(10, 100).excess((9, 50), (2, 10)) == (1, -40)
    assert Bound(10, 100).excess((1, 99), (1, 2)) == (-8, 1)


def test_cues_per_call_counts_items_of_the_average_size() -> None:
    """Small cues share a payload; a cue as large as a payload goes alone."""
    assert cues_per_call(100) == 10
    assert cues_per_call(5000) == 1


def test_drain_wait_is_the_excess_over_the_safe_rate() -> None:
    """Ten cues over, one per call, at 2 calls/s with the safety factor."""
    wait = drain_wait(excess_cues=10, excess_bytes=0, calls_per_s=2, average_item_bytes=5000)
    assert wait == pytest.approx(10 / (2 * DRAIN_SAFETY))


def test_drain_wait_never_promises_less_than_the_minimum() -> None:
    """Nothing in excess still asks for the minimum wait."""
    assert drain_wait(excess_cues=0, excess_bytes=0, calls_per_s=5, average_item_bytes=1) == (
        MIN_RETRY_AFTER_S
    )


def test_expiry_wait_is_when_enough_cues_have_expired() -> None:
    """Two cues over: room once the second-soonest cue expires."""
    assert expiry_wait([NOW + 9, NOW + 3, NOW + 5], 2, NOW) == 5.0
    assert expiry_wait([], 2, NOW) == MIN_RETRY_AFTER_S


def test_an_offline_channel_waits_for_expiry_or_its_next_probe() -> None:
    """A channel that is not broadcasting frees room as cues expire, or when probed again."""
    load = _load(live=False, expiries=(NOW + 8, NOW + 9), backoff_until=NOW + 2)
    wait = channel_wait(
        load, excess_cues=1, excess_bytes=0, channel_rate=5, offline_probe=3.0, now=NOW
    )
    assert wait == 8.0
    soon = _load(live=False, expiries=(NOW + 1,), backoff_until=NOW + 2)
    assert (
        channel_wait(
            soon, excess_cues=1, excess_bytes=0, channel_rate=5, offline_probe=3.0, now=NOW
        )
        == 2.0
    )


def test_a_shared_channel_waits_for_its_share_plus_its_back_off() -> None:
    """Below its full rate a channel drains at its share; a back-off adds to the wait."""
    load = _load(calls_per_s=1.0, backoff_until=NOW + 0.5, pending_bytes=50_000)
    wait = channel_wait(
        load, excess_cues=0, excess_bytes=921, channel_rate=5, offline_probe=3.0, now=NOW
    )
    assert wait == pytest.approx(921 / (DRAIN_SAFETY * 1024 * 0.9) + 0.5)


def test_a_channel_at_full_rate_waits_for_whole_bursts() -> None:
    """At 5 calls/s, 10 calls of excess take a window after the next call may start, which
    is later than the average rate promises (10 / 4.25 s)."""
    load = _load(calls_per_s=5.0, pending_bytes=10 * 2000, next_allowed=NOW + 1.5)
    wait = channel_wait(
        load, excess_cues=10, excess_bytes=0, channel_rate=5, offline_probe=3.0, now=NOW
    )
    assert wait == pytest.approx(1.5 + 1 * 1.0 + BURST_SLACK_S)
    assert wait > 10 / (5 * DRAIN_SAFETY)


def test_a_channels_share_is_the_account_split_among_busy_channels() -> None:
    """155 calls/s over 62 busy channels is 2.5 each; over 10 channels the channel rate caps."""
    assert share_of_calls(channel_rate=5, account_rate=155, busy_channels=62) == 2.5
    assert share_of_calls(channel_rate=5, account_rate=155, busy_channels=10) == 5
    assert share_of_calls(channel_rate=5, account_rate=155, busy_channels=0) == 5


def test_refusals_carry_their_code_status_scope_and_wait() -> None:
    """Each refusal is a 429 queue_full with its scope, or a 503 while shutting down."""
    arn = "arn:aws:ivs:us-west-2:123456789012:channel/abc"
    channel = channel_full(arn, 1000, 1.5)
    assert (channel.code, channel.status, channel.retry_after) == ("queue_full", 429, 1.5)
    assert channel.details == {"scope": "channel", "channel": arn}
    assert process_full("full", 2.0).details == {"scope": "process"}
    connection = connection_full(1000, 0.25)
    assert connection.details == {"scope": "connection"}
    assert connection.message.startswith("this connection has 1000 cues in flight")
    assert (shutting_down().status, shutting_down().retry_after) == (503, 5.0)
