"""The stream's promise, simulated without sockets or sleeps: a reconnect loses nothing and
sends nothing twice; acks, nacks, receipts and closes move the ledger exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from metadata_gateway.client.errors import GatewayError
from metadata_gateway.client.frames import Frame
from metadata_gateway.client.ledger import (
    MESSAGE_TOO_BIG,
    Emit,
    Reject,
    Resolve,
    StreamLedger,
    Warn,
)
from metadata_gateway.client.results import Receipt
from metadata_gateway.client.retry import RetryPolicy

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abc"


def _ledger(**changes: Any) -> StreamLedger:
    return StreamLedger(retry=RetryPolicy(**changes), rand=lambda: 0.0)


def _cue(cue_id: str) -> dict[str, Any]:
    return {"channel": ARN, "type": "custom", "id": cue_id, "data": {}}


def _send(ledger: StreamLedger, *ids: str, now: float = 0.0) -> Frame:
    loop = asyncio.get_running_loop()
    cues = [_cue(i) for i in ids]
    frame = Frame.build(
        ledger.next_ref(), cues, single=len(ids) == 1, started=now, future=loop.create_future()
    )
    ledger.add(frame)
    return frame


def _ack(ref: int, *ids: str, status: str = "queued", **extra: Any) -> bytes:
    cues = [{"id": i, "channel": ARN, "status": status, **extra} for i in ids]
    return orjson.dumps({"op": "ack", "ref": ref, "cues": cues})


def _nack(ref: int | None, code: str, retry_after_ms: int | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": code}
    if retry_after_ms is not None:
        error["retry_after_ms"] = retry_after_ms
    return orjson.dumps({"op": "nack", "ref": ref, "error": error})


def _receipt(op: str, *ids: str, **extra: Any) -> bytes:
    return orjson.dumps({"op": op, "channel": ARN, "ids": list(ids), **extra})


def _acked(ledger: StreamLedger, cue_id: str) -> Frame:
    """A cue sent at 0.0 and acknowledged at 0.1."""
    frame = _send(ledger, cue_id)
    ledger.due(0.0)
    ledger.handle(_ack(frame.ref, cue_id), 0.1)
    return frame


def _written(ledger: StreamLedger, now: float = 0.0) -> list[list[str]]:
    frames, _ = ledger.due(now)
    return [[cue["id"] for cue in frame.cues] for frame in frames]


async def test_an_acked_cue_without_receipt_is_resent_first_with_its_id() -> None:
    """After a reconnect, acknowledged cues whose receipts were lost go first, same ids."""
    ledger = _ledger()
    ledger.connected(0.0)
    first = _send(ledger, "a", "b")
    assert _written(ledger) == [["a", "b"]]
    effects = ledger.handle(_ack(first.ref, "a", "b"), 0.1)
    assert [type(e) for e in effects] == [Resolve]
    _send(ledger, "c")
    assert ledger.connected(1.0) == 2
    assert _written(ledger, 1.0) == [["a", "b"], ["c"]]
    assert ledger.resent == 2
    assert ledger.unsettled == 3


async def test_a_frame_without_ack_is_written_again_and_answered_once() -> None:
    """A frame written on a lost connection is written on the next; the old ack is ignored."""
    ledger = _ledger()
    ledger.connected(0.0)
    frame = _send(ledger, "a")
    assert _written(ledger) == [["a"]]
    ledger.connected(1.0)
    assert _written(ledger, 1.0) == [["a"]]
    assert _written(ledger, 1.0) == []  # never twice on one connection
    effects = ledger.handle(_ack(frame.ref, "a"), 1.1)
    assert effects == [Resolve(frame, effects[0].value)]  # type: ignore[union-attr]
    assert ledger.handle(_ack(frame.ref, "a"), 1.2) == []


async def test_a_receipt_settles_a_cue_and_nothing_is_resent() -> None:
    """A `sent` receipt ends a cue's life: the next connection sends nothing again."""
    ledger = _ledger()
    ledger.connected(0.0)
    _acked(ledger, "a")
    effects = ledger.handle(_receipt("sent", "a", at=5.0), 0.2)
    assert effects == [Emit(Receipt("sent", ARN, ("a",), at=5.0))]
    assert ledger.settled
    assert ledger.connected(1.0) == 0
    assert _written(ledger, 1.0) == []


async def test_a_shutdown_drop_keeps_the_cue_for_the_next_gateway() -> None:
    """`dropped` for `shutdown` is not final: the cue goes again after the reconnect."""
    ledger = _ledger()
    ledger.connected(0.0)
    _acked(ledger, "a")
    assert ledger.handle(_receipt("dropped", "a", reason="shutdown"), 0.2) == []
    assert ledger.connected(1.0) == 1
    assert _written(ledger, 1.0) == [["a"]]


async def test_a_resent_cue_the_gateway_delivered_gets_a_receipt_without_time() -> None:
    """`duplicate` with `delivered: true` settles the re-sent cue with `sent` and `at=None`."""
    ledger = _ledger()
    ledger.connected(0.0)
    _acked(ledger, "a")
    ledger.connected(1.0)
    [resend], _ = ledger.due(1.0)
    effects = ledger.handle(_ack(resend.ref, "a", status="duplicate", delivered=True), 1.1)
    assert effects == [Emit(Receipt("sent", ARN, ("a",), at=None))]
    assert ledger.settled


async def test_a_resent_cue_still_queued_waits_for_its_receipt() -> None:
    """`duplicate` with `delivered: false` keeps the cue until the new connection's receipt."""
    ledger = _ledger()
    ledger.connected(0.0)
    _acked(ledger, "a")
    ledger.connected(1.0)
    [resend], _ = ledger.due(1.0)
    assert ledger.handle(_ack(resend.ref, "a", status="duplicate", delivered=False), 1.1) == []
    assert ledger.unsettled == 1


async def test_queue_full_waits_the_retry_after_then_writes_again() -> None:
    """A `queue_full` nack holds the frame exactly `retry_after` (no jitter here)."""
    ledger = _ledger()
    ledger.connected(0.0)
    frame = _send(ledger, "a")
    ledger.due(0.0)
    assert ledger.handle(_nack(frame.ref, "queue_full", 250), 1.0) == []
    assert ledger.due(1.0) == ([], 1.25)
    assert _written(ledger, 1.25) == [["a"]]
    assert frame.retries == 1


async def test_shutting_down_holds_everything_until_the_next_connection() -> None:
    """`shutting_down` holds all writes on this connection; a new one writes at once."""
    ledger = _ledger()
    ledger.connected(0.0)
    frame = _send(ledger, "a")
    ledger.due(0.0)
    ledger.handle(_nack(frame.ref, "shutting_down", 5000), 1.0)
    _send(ledger, "b", now=1.0)
    assert ledger.due(2.0) == ([], 6.0)
    ledger.connected(2.0)
    assert _written(ledger, 2.0) == [["a"], ["b"]]


async def test_a_final_nack_rejects_its_waiter() -> None:
    """A nack that is not retryable fails the send with the gateway's error."""
    ledger = _ledger()
    ledger.connected(0.0)
    frame = _send(ledger, "a")
    ledger.due(0.0)
    [effect] = ledger.handle(_nack(frame.ref, "invalid_cue"), 0.1)
    assert isinstance(effect, Reject)
    assert effect.error.code == "invalid_cue"
    assert ledger.settled


async def test_a_refused_resend_reports_its_cues_dropped() -> None:
    """A re-send the gateway refuses for good gives `dropped` receipts with the error code."""
    ledger = _ledger(max_retries=0)
    ledger.connected(0.0)
    frame = _send(ledger, "a", "b")
    ledger.due(0.0)
    ledger.handle(_ack(frame.ref, "a", "b"), 0.1)
    ledger.connected(1.0)
    [resend], _ = ledger.due(1.0)
    effects = ledger.handle(_nack(resend.ref, "forbidden"), 1.1)
    assert effects[0] == Emit(Receipt("dropped", ARN, ("a", "b"), reason="forbidden"))
    assert isinstance(effects[1], Warn)
    assert ledger.settled


async def test_a_close_for_a_frame_too_big_fails_that_frame_only() -> None:
    """Close 1009 fails the oldest unanswered frame, so the next connection is not closed too."""
    ledger = _ledger()
    ledger.connected(0.0)
    big, small = _send(ledger, "big"), _send(ledger, "small")
    ledger.due(0.0)
    [effect] = ledger.closed(MESSAGE_TOO_BIG)
    assert isinstance(effect, Reject)
    assert effect.frame is big
    assert effect.error.code == "body_too_large"
    assert list(ledger.frames) == [small.ref]
    assert ledger.closed(1001) == []


async def test_a_nack_without_ref_answers_the_oldest_unanswered_frame() -> None:
    """The gateway could not read a ref: answers come in order, so it is the oldest's."""
    ledger = _ledger()
    ledger.connected(0.0)
    first, second = _send(ledger, "a"), _send(ledger, "b")
    ledger.due(0.0)
    [effect] = ledger.handle(_nack(None, "body_too_large"), 0.1)
    assert isinstance(effect, Reject)
    assert effect.frame is first
    assert list(ledger.frames) == [second.ref]


async def test_a_frame_over_the_limit_is_refused_before_it_is_queued() -> None:
    """A frame larger than the gateway takes is never written."""
    ledger = StreamLedger(retry=RetryPolicy(), max_frame_bytes=10)
    loop = asyncio.get_running_loop()
    frame = Frame.build(1, [_cue("a")], single=True, started=0.0, future=loop.create_future())
    with pytest.raises(GatewayError) as raised:
        ledger.add(frame)
    assert raised.value.code == "body_too_large"
    assert ledger.settled


async def test_an_abandoned_written_frame_is_kept_for_its_receipt() -> None:
    """A caller that stops waiting after the write leaves the frame, so its receipt counts."""
    ledger = _ledger()
    ledger.connected(0.0)
    written = _send(ledger, "a")
    ledger.due(0.0)
    unwritten = _send(ledger, "b")
    ledger.abandon(written)
    ledger.abandon(unwritten)
    assert list(ledger.frames) == [written.ref]
    assert ledger.handle(_ack(written.ref, "a"), 0.1) == []
    assert ledger.unsettled == 1
