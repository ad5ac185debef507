"""A channel's queue: order, coalescing into 1 KB payloads, collapse keys, TTL, requeue."""

from __future__ import annotations

import itertools

import orjson

from metadata_gateway.core.channel_queue import ChannelQueue
from metadata_gateway.core.cues import Cue, Priority, parse_cue
from metadata_gateway.core.envelope import MAX_METADATA_BYTES

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abcdEFGH1234"
_ids = itertools.count()


def cue(**fields: object) -> Cue:
    obj: dict[str, object] = {"channel": ARN, "type": "custom", "data": {"n": 0}, **fields}
    return parse_cue(obj, aliases={}, new_id=lambda: f"c{next(_ids)}")


def ids(payload: bytes) -> list[str]:
    return [c["i"] for c in orjson.loads(payload)["c"]]


def test_batch_takes_oldest_cues_that_fit_and_keeps_order() -> None:
    """A payload holds as many waiting cues as fit in 1024 bytes, oldest first, in order."""
    queue = ChannelQueue()
    added = [cue(data={"pad": "x" * 80}) for _ in range(30)]
    for c in added:
        queue.add(c, now=0.0)
    sent: list[str] = []
    while len(queue):
        taken = queue.take_batch(now=0.0)
        assert taken.batch is not None
        assert len(taken.batch.payload) <= MAX_METADATA_BYTES
        if len(queue):  # every payload but the last is as full as the next cue allows
            assert len(taken.batch.payload) > MAX_METADATA_BYTES - len(added[0].item) - 1
        sent += ids(taken.batch.payload)
    assert sent == [c.id for c in added]
    assert queue.pending_bytes == 0


def test_collapse_key_replaces_in_place() -> None:
    """A cue with the same key replaces the waiting one and takes its place in the order."""
    queue = ChannelQueue()
    first, poll_v1, last = cue(), cue(type="poll", data={"poll_id": 1, "v": 1}), cue()
    for c in (first, poll_v1, last):
        queue.add(c, now=0.0)
    poll_v2 = cue(type="poll", data={"poll_id": 1, "v": 2})
    assert queue.add(poll_v2, now=0.1) is not None
    taken = queue.take_batch(now=0.2)
    assert taken.batch is not None
    assert ids(taken.batch.payload) == [first.id, poll_v2.id, last.id]


def test_expired_cues_are_dropped_never_sent() -> None:
    """A cue whose TTL has passed when a batch is built is returned as expired."""
    queue = ChannelQueue()
    short, long = cue(ttl_ms=100), cue(ttl_ms=5000)
    queue.add(short, now=0.0)
    queue.add(long, now=0.0)
    assert queue.next_event(0.0, live=False) == 0.1
    taken = queue.take_batch(now=0.1)
    assert [p.cue.id for p in taken.expired] == [short.id]
    assert taken.batch is not None
    assert ids(taken.batch.payload) == [long.id]


def test_expire_removes_only_due_cues() -> None:
    """`expire` drops exactly the cues due at `now` and the next expiry moves on."""
    queue = ChannelQueue()
    for ttl in (300, 100, 200):
        queue.add(cue(ttl_ms=ttl), now=1.0)
    assert [p.cue.ttl for p in queue.expire(1.2)] == [0.1, 0.2]
    assert queue.next_event(1.2, live=False) == 1.3
    assert len(queue) == 1


def test_raw_cue_travels_alone_in_its_place() -> None:
    """A raw cue is sent verbatim in a call of its own, after the cues before it."""
    queue = ChannelQueue()
    before, raw, after = cue(), cue(type="raw", data="RAW"), cue()
    for c in (before, raw, after):
        queue.add(c, now=0.0)
    payloads = []
    while len(queue):
        taken = queue.take_batch(now=0.0)
        assert taken.batch is not None
        payloads.append(taken.batch.payload)
    assert ids(payloads[0]) == [before.id]
    assert payloads[1] == b"RAW"
    assert ids(payloads[2]) == [after.id]


def test_priority_goes_first_order_kept_within() -> None:
    """Higher priority cues fill the payload first; order within a priority is kept."""
    queue = ChannelQueue()
    low, normal, high1, high2 = (
        cue(priority="low"),
        cue(),
        cue(priority="high"),
        cue(priority="high"),
    )
    for c in (low, normal, high1, high2):
        queue.add(c, now=0.0)
    assert high1.priority is Priority.HIGH
    taken = queue.take_batch(now=0.0)
    assert taken.batch is not None
    assert ids(taken.batch.payload) == [high1.id, high2.id, normal.id, low.id]


def test_requeue_puts_batch_back_in_front_unless_superseded() -> None:
    """An unsent batch goes back first; a keyed cue replaced meanwhile is superseded."""
    queue = ChannelQueue()
    plain, keyed = cue(), cue(key="score")
    queue.add(plain, now=0.0)
    queue.add(keyed, now=0.0)
    taken = queue.take_batch(now=0.0)
    assert taken.batch is not None
    newer_keyed, later = cue(key="score"), cue()
    queue.add(newer_keyed, now=0.1)
    queue.add(later, now=0.1)
    superseded = queue.requeue(taken.batch)
    assert [p.cue.id for p in superseded] == [keyed.id]
    assert [p.cue.id for p in queue] == [plain.id, newer_keyed.id, later.id]
