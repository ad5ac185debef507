"""Cue validation: what is refused, with which code and field, and the defaults filled in."""

from __future__ import annotations

from typing import Any

import pytest

from metadata_gateway.core.cues import (
    DEFAULT_MAX_CUE_BYTES,
    ID_PREFIX_LENGTH,
    ID_PREFIXES,
    IdFactory,
    Priority,
    id_factory,
    id_prefix,
    parse_cue,
)
from metadata_gateway.core.envelope import MAX_METADATA_BYTES, encode_payload
from metadata_gateway.core.errors import CueError

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abcdEFGH1234"
ALIASES = {"demo": ARN}


def parse(obj: Any) -> Any:
    return parse_cue(obj, aliases=ALIASES, new_id=lambda: "g1")


def refused(obj: Any) -> CueError:
    with pytest.raises(CueError) as info:
        parse(obj)
    return info.value


def test_quiz_cue_gets_defaults() -> None:
    """A minimal quiz cue gets an id, a 30 s TTL, normal priority and no collapse key."""
    cue = parse({"channel": "demo", "type": "quiz", "data": {"question_id": "q1"}})
    assert (cue.channel, cue.id, cue.ttl, cue.key, cue.priority) == (
        ARN,
        "g1",
        30.0,
        None,
        Priority.NORMAL,
    )
    assert cue.item == b'{"i":"g1","t":"quiz","d":{"question_id":"q1"}}'
    assert not cue.client_id


def test_poll_and_partial_caption_get_collapse_keys() -> None:
    """Polls collapse by poll id; non-final captions by language."""
    poll = parse({"channel": ARN, "type": "poll", "data": {"poll_id": 7}})
    assert (poll.key, poll.ttl) == ("poll:7", 10.0)
    partial = parse({"channel": ARN, "type": "caption", "data": {"text": "hi", "final": False}})
    assert (partial.key, partial.ttl) == ("caption:default", 4.0)
    final = parse({"channel": ARN, "type": "caption", "data": {"text": "hi", "lang": "fr"}})
    assert final.key is None


def test_text_stays_utf8() -> None:
    """Non-Latin text is carried as UTF-8, not inflated by \\u escapes."""
    cue = parse({"channel": ARN, "type": "caption", "data": {"text": "東京"}})
    assert "東京".encode() in cue.item


@pytest.mark.parametrize(
    ("obj", "code", "field"),
    [
        ([], "invalid_cue", ""),
        (
            {"channel": ARN, "type": "quiz", "data": {"question_id": 1}, "extra": 1},
            "invalid_cue",
            "extra",
        ),
        ({"type": "quiz", "data": {}}, "invalid_cue", "channel"),
        ({"channel": "arn:aws:ivs:bad", "type": "quiz", "data": {}}, "invalid_cue", "channel"),
        ({"channel": ARN, "type": "video", "data": {}}, "invalid_cue", "type"),
        ({"channel": ARN, "type": "quiz"}, "invalid_cue", "data"),
        ({"channel": ARN, "type": "quiz", "data": {}}, "invalid_cue", "data.question_id"),
        ({"channel": ARN, "type": "poll", "data": {"x": 1}}, "invalid_cue", "data.poll_id"),
        ({"channel": ARN, "type": "caption", "data": {"text": 5}}, "invalid_cue", "data.text"),
        ({"channel": ARN, "type": "raw", "data": {"a": 1}}, "invalid_cue", "data"),
        ({"channel": ARN, "type": "custom", "data": [1]}, "invalid_cue", "data"),
        ({"channel": ARN, "type": "custom", "data": {}, "id": "x" * 65}, "invalid_cue", "id"),
        ({"channel": ARN, "type": "custom", "data": {}, "ttl_ms": 0}, "invalid_cue", "ttl_ms"),
        ({"channel": ARN, "type": "custom", "data": {}, "ttl_ms": True}, "invalid_cue", "ttl_ms"),
        (
            {"channel": ARN, "type": "custom", "data": {}, "priority": "urgent"},
            "invalid_cue",
            "priority",
        ),
        ({"channel": ARN, "type": "custom", "data": {"n": 2**70}}, "invalid_cue", "data"),
    ],
)
def test_refuses_bad_cues_naming_the_field(obj: Any, code: str, field: str) -> None:
    """Each schema violation is refused with invalid_cue and the offending field."""
    error = refused(obj)
    assert (error.code, error.status, error.details.get("field")) == (code, 400, field)


def test_unknown_alias_is_404() -> None:
    """A name that is neither an ARN nor a configured alias is unknown_channel."""
    error = refused({"channel": "nope", "type": "quiz", "data": {"question_id": 1}})
    assert (error.code, error.status) == ("unknown_channel", 404)


def test_cue_whose_envelope_exceeds_max_cue_bytes_is_refused() -> None:
    """The limit applies to the cue alone in an envelope, in UTF-8 bytes: 16384 by default."""
    base = {"channel": ARN, "type": "custom", "id": "a"}
    overhead = len(encode_payload([b'{"i":"a","t":"custom","d":{"s":""}}']))
    fits = parse({**base, "data": {"s": "x" * (DEFAULT_MAX_CUE_BYTES - overhead)}})
    assert len(encode_payload([fits.item])) == DEFAULT_MAX_CUE_BYTES
    error = refused({**base, "data": {"s": "é" * ((DEFAULT_MAX_CUE_BYTES - overhead) // 2 + 1)}})
    assert (error.code, error.status) == ("cue_too_large", 413)
    assert error.details == {"size": DEFAULT_MAX_CUE_BYTES + 1, "limit": DEFAULT_MAX_CUE_BYTES}
    small = {**base, "data": {"s": "x" * 2000}}
    with pytest.raises(CueError) as info:
        parse_cue(small, aliases=ALIASES, new_id=lambda: "g1", max_cue_bytes=MAX_METADATA_BYTES)
    assert info.value.details == {"size": 2000 + overhead, "limit": MAX_METADATA_BYTES}


def test_raw_cue_may_not_start_with_a_compressed_marker() -> None:
    """Raw text starting with ~z or ~p would be misread by decoders, so it is refused."""
    for text in ("~zAbc", "~p"):
        error = refused({"channel": ARN, "type": "raw", "data": text})
        assert (error.code, error.details["field"]) == ("invalid_cue", "data")
    assert parse({"channel": ARN, "type": "raw", "data": "~x fine"}).item == b"~x fine"


def test_raw_cue_is_verbatim_and_limited_to_1024_bytes() -> None:
    """A raw cue's payload is its data string exactly; over 1024 UTF-8 bytes is refused."""
    cue = parse({"channel": ARN, "type": "raw", "data": "WEBVTT cue"})
    assert cue.item == b"WEBVTT cue"
    assert cue.raw
    error = refused({"channel": ARN, "type": "raw", "data": "ü" * 513})
    assert error.details["size"] == 1026


def test_numbered_id_prefixes_are_as_long_as_random_ones_and_wrap() -> None:
    """A replica's numbered prefix takes the 3 characters of a random one, distinct for every
    number below `ID_PREFIXES`, and ids keep a single process's length."""
    prefixes = {id_prefix(n) for n in range(5_000)}
    assert len(prefixes) == 5_000
    assert {len(p) for p in prefixes} == {ID_PREFIX_LENGTH}
    assert id_prefix(ID_PREFIXES + 7) == id_prefix(7)
    ids = IdFactory()
    single = id_factory()
    ids.prefix = id_prefix(12_345)
    assert [len(ids()) for _ in range(40)] == [len(single()) for _ in range(40)]
