"""Compressed payloads and cues in parts: packed by encoded size, decoded whole or not at all."""

from __future__ import annotations

import itertools

import orjson

from bench.corpus import corpus_cues, large_text
from metadata_gateway.client import CueDecoder, Damage, DecodedCue
from metadata_gateway.core.channel_queue import ChannelQueue
from metadata_gateway.core.cues import Cue, parse_cue
from metadata_gateway.core.envelope import MAX_METADATA_BYTES, encode_payload
from metadata_gateway.core.pending import Batch, Encoding
from metadata_gateway.core.wire import PART_DATA_BYTES, pack_compressed, split_parts

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abcdEFGH1234"
_ids = itertools.count()


def cue(**fields: object) -> Cue:
    obj: dict[str, object] = {"channel": ARN, "type": "custom", "data": {"n": 0}, **fields}
    return parse_cue(obj, aliases={}, new_id=lambda: f"c{next(_ids)}", max_cue_bytes=65_536)


def corpus(count: int) -> list[Cue]:
    objs = itertools.islice(corpus_cues(ARN), count)
    return [parse_cue(o, aliases={}, new_id=lambda: f"k{next(_ids)}") for o in objs]


def drain(queue: ChannelQueue, encoding: Encoding, now: float = 0.0) -> list[Batch]:
    batches: list[Batch] = []
    while True:
        taken = queue.take_batch(now, encoding=encoding)
        if taken.batch is None:
            return batches
        queue.delivered(taken.batch, now)
        batches.append(taken.batch)


def decoded(payloads: list[bytes], decoder: CueDecoder | None = None) -> list[DecodedCue]:
    decoder = decoder or CueDecoder()
    out = []
    for payload in payloads:
        for item in decoder.decode(payload.decode()):
            assert isinstance(item, DecodedCue)
            out.append(item)
    return out


def test_deflate_payloads_fit_and_hold_more_than_twice_the_json_ones() -> None:
    """On the show corpus every ~z payload is at most 1024 bytes and carries >= 2x the cues."""
    cues = corpus(400)
    counts = {}
    for encoding in Encoding:
        queue = ChannelQueue()
        for c in cues:
            queue.add(c, now=0.0)
        batches = drain(queue, encoding)
        assert all(len(b.payload) <= MAX_METADATA_BYTES for b in batches)
        assert [p.cue.id for b in batches for p in b.cues] == [c.id for c in cues]
        got = decoded([b.payload for b in batches])
        assert [(d.id, orjson.dumps(d.data)) for d in got] == [
            (c.id, orjson.dumps(orjson.loads(c.item)["d"])) for c in cues
        ]
        counts[encoding] = len(cues) / len(batches)
    assert counts[Encoding.DEFLATE] >= 2 * counts[Encoding.JSON]


def test_json_payloads_are_the_plain_envelope() -> None:
    """A json channel's payload is exactly the envelope of its cues, as before compression."""
    queue = ChannelQueue()
    cues = corpus(5)
    for c in cues:
        queue.add(c, now=0.0)
    (batch,) = drain(queue, Encoding.JSON)
    assert batch.payload == encode_payload(c.item for c in cues)


def test_compressed_payload_is_as_full_as_the_next_cue_allows() -> None:
    """Adding the next waiting cue to any full ~z payload would take it past 1024 bytes."""
    items = [c.item for c in corpus(300)]
    start = 0
    while start < len(items) - 1:
        count, payload = pack_compressed(items[start:])
        assert len(payload) <= MAX_METADATA_BYTES
        if start + count < len(items):
            assert pack_compressed(items[start : start + count + 1])[0] == count
        start += count


def test_large_cue_goes_in_consecutive_parts_between_the_small_cues() -> None:
    """Small cues before, the parts of a 16 KB cue one per call, small cues after; in order."""
    text = large_text(16_000)
    for encoding in Encoding:
        queue = ChannelQueue()
        before, big, after = cue(data={"n": 1}), cue(data={"text": text}), cue(data={"n": 2})
        for c in (before, big, after):
            queue.add(c, now=0.0)
        batches = drain(queue, encoding)
        parts = [b for b in batches if b.part is not None]
        assert len(parts) >= 2
        assert batches[1 : 1 + len(parts)] == parts  # consecutive, right after `before`
        assert [b.part for b in parts] == [(i, len(parts)) for i in range(len(parts))]
        assert [b.cues for b in parts[:-1]] == [()] * (len(parts) - 1)  # sent with the last
        assert parts[-1].cues[0].cue is big
        assert all(len(b.payload) <= MAX_METADATA_BYTES for b in batches)
        got = decoded([b.payload for b in batches])
        assert [d.id for d in got] == [before.id, big.id, after.id]
        assert got[1].data == {"text": text}


def test_decoder_joining_after_the_first_part_hands_over_nothing_partial() -> None:
    """Fed a stream from any point inside a cue in parts, the decoder emits only whole cues."""
    envelope = encode_payload([cue(id="big", data={"text": large_text(9_000)}).item])
    parts = split_parts(envelope)
    tail = [b'{"v":1,"c":[{"i":"s","t":"custom","d":{}}]}']
    for start in range(1, len(parts)):
        decoder = CueDecoder()
        assert [d.id for d in decoded([*parts[start:], *tail], decoder)] == ["s"]
        assert decoder.damaged == 0  # joining late is not damage
    # Cut off in the middle: the held parts are discarded and reported.
    damages: list[Damage] = []
    decoder = CueDecoder(on_damage=damages.append)
    assert [d.id for d in decoded([parts[0], *tail], decoder)] == ["s"]
    assert [d.reason for d in damages] == ["incomplete"]


def test_refused_part_abandons_the_cue_and_requeued_part_is_sent_again() -> None:
    """A part sent again after a retryable failure is the same part; parts never skip."""
    queue = ChannelQueue()
    big = cue(data={"text": large_text(5_000)})
    queue.add(big, now=0.0)
    first = queue.take_batch(0.0).batch
    assert first is not None
    assert first.part == (0, len(split_parts(encode_payload([big.item]))))
    queue.requeue(first)
    again = queue.take_batch(0.1).batch
    assert again is not None
    assert again.payload == first.payload
    queue.delivered(again, 0.1)
    assert queue.abandon_parts() is not None
    assert queue.take_batch(0.2).batch is None


def test_part_capacity_keeps_every_part_within_1024_bytes() -> None:
    """A part carries PART_DATA_BYTES of deflated envelope and still fits one payload."""
    envelope = encode_payload([cue(data={"text": large_text(65_000)}).item])
    parts = split_parts(envelope)
    assert max(len(p) for p in parts) <= MAX_METADATA_BYTES
    assert PART_DATA_BYTES == 810
