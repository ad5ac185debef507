"""Parsing IVS's EventBridge events and deciding which are news: pure, with times as numbers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from metadata_gateway.core.stream_state import (
    Change,
    EventSkipped,
    SkipReason,
    StreamBook,
    StreamEvent,
    parse_event,
)

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/AbCdef1G2hij"
A, B = "st-" + "A" * 23, "st-" + "B" * 23


def envelope(**changes: Any) -> dict[str, Any]:
    """An event as IVS's user guide shows one, with some fields changed."""
    event: dict[str, Any] = {
        "version": "0",
        "id": "01234567-0123-0123-0123-012345678901",
        "detail-type": "IVS Stream State Change",
        "source": "aws.ivs",
        "account": "123456789012",
        "time": "2026-12-07T20:12:36Z",
        "region": "us-west-2",
        "resources": [ARN],
        "detail": {"event_name": "Stream Start", "channel_name": "show", "stream_id": A},
    }
    event.update(changes)
    return event


def ev(name: str, stream: str, time: float) -> StreamEvent:
    return StreamEvent(ARN, name, stream, time)


def test_parse_reads_the_documented_envelope() -> None:
    """The channel from resources[0], event_name, stream_id and time (UTC seconds)."""
    event = parse_event(orjson.dumps(envelope()))
    assert event == StreamEvent(ARN, "Stream Start", A, 1796674356.0)
    assert event.live is True


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", SkipReason.MALFORMED),
        (b"[1]", SkipReason.MALFORMED),
        (orjson.dumps(envelope(source="aws.medialive")), SkipReason.NOT_STREAM_STATE),
        (
            orjson.dumps(envelope(**{"detail-type": "IVS Limit Breach"})),
            SkipReason.NOT_STREAM_STATE,
        ),
        (orjson.dumps(envelope(resources=[])), SkipReason.MALFORMED),
        (orjson.dumps(envelope(resources=["arn:aws:s3:::bucket"])), SkipReason.MALFORMED),
        (orjson.dumps(envelope(detail={"event_name": "Stream Start"})), SkipReason.MALFORMED),
        (orjson.dumps(envelope(time="yesterday")), SkipReason.MALFORMED),
        (orjson.dumps(envelope(time="2026-12-07T20:12:36")), SkipReason.MALFORMED),
    ],
)
def test_unparseable_events_are_skipped_with_a_reason(body: bytes, reason: SkipReason) -> None:
    """Anything but a well-formed IVS Stream State Change is skipped, and says why."""
    with pytest.raises(EventSkipped) as skipped:
        parse_event(body)
    assert skipped.value.reason is reason


def test_a_stream_s_life_in_order_starts_and_ends_one_session() -> None:
    """Created says nothing; Start: live; End: offline, its session ended; Session Ended after
    it changes nothing more."""
    book = StreamBook()
    with pytest.raises(EventSkipped) as skipped:
        book.apply(ev("Session Created", A, 10))
    assert skipped.value.reason is SkipReason.NOT_STATE
    assert book.apply(ev("Stream Start", A, 10)) == Change(live=True, ended_stream=None)
    assert book.apply(ev("Stream End", A, 50)) == Change(live=False, ended_stream=A)
    assert book.apply(ev("Session Ended", A, 50)) == Change(live=False, ended_stream=None)


def test_repeated_late_and_out_of_order_events_change_nothing() -> None:
    """A duplicate, an event older than the newest, and a start of a stream already ended are
    skipped; the channel stays as the newest event left it."""
    book = StreamBook()
    book.apply(ev("Stream Start", A, 10))
    with pytest.raises(EventSkipped) as duplicate:
        book.apply(ev("Stream Start", A, 10))
    assert duplicate.value.reason is SkipReason.DUPLICATE
    book.apply(ev("Stream End", A, 20))
    for late in (ev("Stream Start", A, 10), ev("Stream Start", A, 25), ev("Stream End", A, 5)):
        with pytest.raises(EventSkipped) as stale:
            book.apply(late)
        assert stale.value.reason is SkipReason.STALE, late
    assert book.apply(ev("Stream Start", B, 30)) == Change(live=True, ended_stream=None)
    with pytest.raises(EventSkipped):
        book.apply(ev("Session Ended", A, 21))  # older than B's start


def test_within_one_second_the_stream_s_life_orders_events() -> None:
    """EventBridge times are whole seconds: an end beats its start in the same second, in
    either arrival order, and another stream's end cannot end a newer start."""
    book = StreamBook()
    book.apply(ev("Stream End", A, 10))
    with pytest.raises(EventSkipped):
        book.apply(ev("Stream Start", A, 10))
    book = StreamBook()
    book.apply(ev("Stream Start", B, 10))
    with pytest.raises(EventSkipped) as other:
        book.apply(ev("Stream End", A, 10))
    assert other.value.reason is SkipReason.STALE
    assert book.stream_of(ARN) == B


def test_a_new_stream_while_one_is_live_ends_the_old_session() -> None:
    """A takeover or a start with another stream id, newer, ends the live stream's session."""
    book = StreamBook()
    book.apply(ev("Stream Start", A, 10))
    assert book.apply(ev("Stream Takeover", B, 12)) == Change(live=True, ended_stream=A)
    with pytest.raises(EventSkipped):
        book.apply(ev("Stream Start", A, 13))  # A's session is over
