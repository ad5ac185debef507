"""Properties, not examples: the coalescer and the cue parser over arbitrary input.

The rate limiter's property lives in test_rate_limit.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from metadata_gateway.config import Settings
from metadata_gateway.core.channel_queue import ChannelQueue
from metadata_gateway.core.cues import CUE_FIELDS, CUE_TYPES, Cue, Priority, parse_cue
from metadata_gateway.core.envelope import MAX_METADATA_BYTES, encode_payload
from metadata_gateway.core.errors import CueError
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.pending import Batch
from metadata_gateway.core.validation import CueRules, decode_json
from metadata_gateway.ingress.auth import ANYONE
from metadata_gateway.ingress.documents import accept_document
from metadata_gateway.ingress.ws_session import WsSession
from metadata_gateway.intake.local import LocalIntake
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.telling.metrics import Metrics
from metadata_gateway.telling.receipts import ReceiptRouter

T = TypeVar("T")
ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abcdEFGH1234"
ALIASES = {"show": ARN}
NOW = 0.0  # the coalescer properties never let a TTL run out

# Text as players will see it: ASCII, accents, CJK, emoji (4 bytes in UTF-8), and the rest.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from('aé中文字🎉🧠👍🏽\u200d"\\\n'),
        st.characters(codec="utf-8"),
    ),
    max_size=260,
)
KEYS = st.none() | st.sampled_from(["k1", "k2", "k3"])


@dataclass(frozen=True)
class CueSpec:
    """What a client posts, before the gateway gives it an id."""

    type: str
    text: str
    key: str | None
    priority: str


CUE_SPECS = st.builds(
    CueSpec,
    type=st.sampled_from(["custom", "custom", "custom", "quiz", "raw"]),
    text=TEXT,
    key=KEYS,
    priority=st.sampled_from(["high", "normal", "normal", "low"]),
)


def attempt(call: Callable[[], T]) -> T | CueError:
    """What `call` returns, or the `CueError` it raises (any other exception propagates)."""
    try:
        return call()
    except CueError as exc:
        return exc


def make_cue(spec: CueSpec, cue_id: str) -> Cue | None:
    """The parsed cue, or None when it is too large for one payload (the client got a 413)."""
    data: Any
    if spec.type == "raw":
        data = spec.text or "-"
    elif spec.type == "quiz":
        data = {"question_id": cue_id, "text": spec.text}
    else:
        data = {"text": spec.text}
    obj: dict[str, Any] = {"channel": ARN, "type": spec.type, "data": data, "id": cue_id}
    obj["priority"] = spec.priority
    if spec.key is not None:
        obj["key"] = spec.key
    cue = attempt(
        lambda: parse_cue(
            obj, aliases={}, new_id=lambda: "unused", max_cue_bytes=MAX_METADATA_BYTES
        )
    )
    if isinstance(cue, CueError):
        assert cue.code == "cue_too_large", cue
        return None
    return cue


def payload_ids(batch: Batch) -> list[str]:
    if batch.cues[0].cue.raw:
        return [batch.cues[0].cue.id]
    return [item["i"] for item in orjson.loads(batch.payload)["c"]]


def check_payload(batch: Batch) -> None:
    """A payload fits IVS, and carries each cue's data exactly as posted."""
    assert 0 < len(batch.payload) <= MAX_METADATA_BYTES
    first = batch.cues[0].cue
    if first.raw:
        assert len(batch.cues) == 1
        assert batch.payload == first.item
        return
    assert not any(p.cue.raw for p in batch.cues)
    envelope = orjson.loads(batch.payload)
    assert envelope["v"] == 1
    assert [orjson.dumps(item) for item in envelope["c"]] == [p.cue.item for p in batch.cues]


class CoalescerMachine(RuleBasedStateMachine):
    """A channel queue against a model: lanes by priority, collapse keys replacing in place."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = ChannelQueue()
        self.lanes: dict[Priority, list[Cue]] = {p: [] for p in Priority}
        self.in_flight: Batch | None = None
        self.ids = (f"c{n}" for n in itertools.count())
        self.accepted: list[str] = []
        self.delivered: list[str] = []
        self.superseded: list[str] = []

    def waiting(self) -> list[Cue]:
        return [cue for priority in Priority for cue in self.lanes[priority]]

    @rule(spec=CUE_SPECS)
    def add(self, spec: CueSpec) -> None:
        cue = make_cue(spec, next(self.ids))
        if cue is None:
            return
        self.accepted.append(cue.id)
        old = next((c for c in self.waiting() if cue.key and c.key == cue.key), None)
        replaced = self.queue.add(cue, NOW)
        assert (replaced.cue.id if replaced else None) == (old.id if old else None)
        if old is None:
            self.lanes[cue.priority].append(cue)
            return
        self.superseded.append(old.id)
        lane = self.lanes[old.priority]
        if old.priority == cue.priority:
            lane[lane.index(old)] = cue  # latest wins, in the place of the one it replaces
        else:
            lane.remove(old)
            self.lanes[cue.priority].append(cue)

    @precondition(lambda self: self.in_flight is None)
    @rule()
    def take(self) -> None:
        order = self.waiting()
        taken = self.queue.take_batch(NOW, repeats=False)
        assert taken.expired == ()
        if not order:
            assert taken.batch is None
            return
        batch = taken.batch
        assert batch is not None
        check_payload(batch)
        ids = payload_ids(batch)
        # The oldest waiting cues, in order, as many as fit: the next one would not.
        assert ids == [c.id for c in order[: len(ids)]]
        rest = order[len(ids) :]
        if rest and not rest[0].raw and not batch.cues[0].cue.raw:
            fuller = encode_payload([*(p.cue.item for p in batch.cues), rest[0].item])
            assert len(fuller) > MAX_METADATA_BYTES
        for cue in order[: len(ids)]:
            self.lanes[cue.priority].remove(cue)
        self.in_flight = batch

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def deliver(self) -> None:
        assert self.in_flight is not None
        self.queue.delivered(self.in_flight, NOW)
        self.delivered += [p.cue.id for p in self.in_flight.cues]
        self.in_flight = None

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def fail_and_requeue(self) -> None:
        assert self.in_flight is not None
        keys_waiting = {c.key for c in self.waiting() if c.key}
        superseded = self.queue.requeue(self.in_flight)
        expected = [p.cue for p in self.in_flight.cues if p.cue.key in keys_waiting]
        assert [p.cue.id for p in superseded] == [c.id for c in expected]
        self.superseded += [c.id for c in expected]
        back = [p.cue for p in self.in_flight.cues if p.cue.key not in keys_waiting]
        for priority in Priority:
            self.lanes[priority][:0] = [c for c in back if c.priority == priority]
        self.in_flight = None

    @invariant()
    def queue_matches_model(self) -> None:
        waiting = self.waiting()
        assert [p.cue.id for p in self.queue] == [c.id for c in waiting]
        assert self.queue.pending_bytes == sum(len(c.item) for c in waiting)
        assert len(self.queue) == len(waiting)

    @invariant()
    def no_cue_lost_or_duplicated(self) -> None:
        in_flight = [p.cue.id for p in self.in_flight.cues] if self.in_flight else []
        settled = self.delivered + self.superseded + in_flight + [c.id for c in self.waiting()]
        assert sorted(settled) == sorted(self.accepted)


TestCoalescer = CoalescerMachine.TestCase
TestCoalescer.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[*HealthCheck]
)


def drain(queue: ChannelQueue) -> Iterator[Batch]:
    while True:
        batch = queue.take_batch(NOW, repeats=False).batch
        if batch is None:
            return
        check_payload(batch)
        queue.delivered(batch, NOW)
        yield batch


@settings(max_examples=200, deadline=None)
@given(specs=st.lists(CUE_SPECS.map(lambda s: CueSpec(s.type, s.text, s.key, "normal"))))
def test_drained_queue_delivers_latest_of_each_key_and_every_unkeyed_cue_in_order(
    specs: list[CueSpec],
) -> None:
    """Draining sends each key's latest cue in its first one's place and every unkeyed cue."""
    queue = ChannelQueue()
    cues = [c for n, s in enumerate(specs) if (c := make_cue(s, f"c{n}")) is not None]
    for cue in cues:
        queue.add(cue, NOW)
    latest = {c.key: c for c in cues if c.key}
    expected: list[str] = []
    for cue in cues:
        if cue.key is None:
            expected.append(cue.id)
        elif latest[cue.key] is not None:
            expected.append(latest[cue.key].id)
            latest[cue.key] = None  # type: ignore[assignment]
    sent = [cue_id for batch in drain(queue) for cue_id in payload_ids(batch)]
    assert sent == expected
    assert len(queue) == 0
    assert queue.pending_bytes == 0


# ---- the parser ------------------------------------------------------------------------

INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson decodes
SCALARS = (
    st.none()
    | st.booleans()
    | INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"))
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
FIELD_VALUES = {
    "channel": st.sampled_from(["show", ARN, "arn:aws:ivs:x", "", "nobody"]) | JSON,
    "type": st.sampled_from(CUE_TYPES) | JSON,
    "data": JSON,
    "id": st.text(max_size=70) | JSON,
    "key": st.text(max_size=140) | JSON,
    "ttl_ms": st.integers(-5, 10**8) | JSON,
    "priority": st.sampled_from(["high", "NORMAL", "low", "urgent"]) | JSON,
    "not_before": st.sampled_from(["2026-11-28T20:14:30Z", "2026-11-28", "0001-01-01T00:00+01:00"])
    | INTS
    | JSON,
    "repeat_ms": st.integers(0, 10**7) | JSON,
    "persist": st.booleans() | JSON,
}
# Objects that get past the first checks: known fields with wrong, odd or right values.
NEAR_CUES = st.fixed_dictionaries(
    {"channel": FIELD_VALUES["channel"], "type": FIELD_VALUES["type"]},
    optional={name: FIELD_VALUES[name] for name in sorted(CUE_FIELDS - {"channel", "type"})},
)
DOCUMENTS = JSON | NEAR_CUES | st.fixed_dictionaries({"cues": st.lists(NEAR_CUES | JSON)})
# Nesting past what orjson encodes (254) but not past what it decodes (1024).
DEEP = st.integers(250, 1100).map(lambda depth: "[" * depth + "]" * depth)
DEEP_BODIES = DEEP.map(
    lambda deep: f'{{"channel":"show","type":"custom","data":{{"d":{deep}}}}}'.encode()
)


@settings(max_examples=400, deadline=None)
@given(obj=JSON | NEAR_CUES)
def test_parse_cue_returns_a_cue_or_raises_cue_error(obj: Any) -> None:
    """Any JSON value parses to a cue or raises a `CueError` with a 4xx status, nothing else."""
    cue = attempt(lambda: parse_cue(obj, aliases=ALIASES, new_id=lambda: "gen", max_cue_bytes=1024))
    if isinstance(cue, CueError):
        assert 400 <= cue.status < 500
        assert cue.code in ("invalid_cue", "unknown_channel", "cue_too_large")
        orjson.dumps(cue.body())
    else:
        assert cue.channel == ARN
        assert len(cue.item) <= MAX_METADATA_BYTES


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=200) | JSON.map(orjson.dumps).map(lambda b: b[: len(b) // 2]))
def test_decode_json_raises_invalid_json_for_anything_that_is_not_json(body: bytes) -> None:
    """Arbitrary bytes decode to a value or raise `invalid_json` (400), never another error."""
    value = attempt(lambda: decode_json(body))
    if isinstance(value, CueError):
        assert (value.code, value.status) == ("invalid_json", 400)


@pytest.fixture
def gateway() -> Gateway:
    """A gateway that is never started: submissions are queued and never sent."""
    return Gateway(Settings(channels=ALIASES), clock=lambda: NOW)


FIXTURE_PER_TEST = [HealthCheck.function_scoped_fixture]  # one gateway for all the examples


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_PER_TEST)
@given(body=DOCUMENTS.map(orjson.dumps) | DEEP_BODIES | st.binary(max_size=100))
def test_submitting_any_body_queues_cues_or_raises_cue_error(gateway: Gateway, body: bytes) -> None:
    """From body bytes to queued cues: an answer per cue, or one typed `CueError`."""
    metrics = Metrics(gateway)
    answers = attempt(
        lambda: asyncio.run(
            accept_document(
                decode_json(body),
                intake=LocalIntake(gateway),
                rules=CueRules(aliases=ALIASES),
                caller=ANYONE,
                metrics=metrics,
            )
        )
    )
    if isinstance(answers, CueError):
        assert 400 <= answers.status < 500
        orjson.dumps(answers.body())
    else:
        assert answers
        assert all(a.status in ("queued", "duplicate") and a.channel == ARN for a in answers)


class _Ws:
    """Stands in for the WebSocketResponse, which `WsSession.handle` never touches."""


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_PER_TEST)
@given(
    frame=st.one_of(
        st.binary(max_size=100),
        st.text(max_size=100).map(str.encode),
        st.fixed_dictionaries(
            {"op": st.sampled_from(["cue", "cues", "cancel", "dance"]) | JSON, "ref": JSON},
            optional={"cues": st.lists(NEAR_CUES), "id": JSON, "channel": JSON},
        ).map(orjson.dumps),
        NEAR_CUES.map(lambda c: orjson.dumps({"op": "cue", "ref": 1, **c})),
        DEEP.map(lambda deep: f'{{"op":"cue","ref":{deep}}}'.encode()),
        DEEP_BODIES.map(lambda body: b'{"op":"cue","ref":1,' + body[1:]),
    )
)
def test_every_websocket_frame_gets_exactly_one_answer(gateway: Gateway, frame: bytes) -> None:
    """Any frame, JSON or not, is answered by one ack or nack, and `receive` never raises."""
    session = WsSession(
        _Ws(),  # type: ignore[arg-type]
        transport=None,
        intake=LocalIntake(gateway),
        rules=CueRules(aliases=ALIASES),
        caller=ANYONE,
        metrics=Metrics(gateway),
        router=ReceiptRouter(),
        tasks=TaskRegistry(),
        max_in_flight=1000,
        outbound_max_bytes=1 << 20,
    )
    try:
        asyncio.run(session.receive(frame))
        answers = [orjson.loads(message) for message in session._out]
    finally:
        session.forget()
    assert [answer["op"] in ("ack", "nack") for answer in answers] == [True]
