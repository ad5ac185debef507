"""Distributed mode keeps the promises of one process: cancel from any replica, channel views of
the whole deployment, and state and scheduled cues that outlive their owner (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

pytest.importorskip("redis")

from distributed_harness import Replica, delivered_ids, free_port, needs_redis, wait_split
from gateway_harness import RunningGateway, new_channel, running_gateway
from redis.asyncio import Redis

from metadata_gateway.core.cues import Cue, Priority
from metadata_gateway.distributed.keys import PartitionKeys, partition_of
from metadata_gateway.distributed.ownership import LEASE_MS, TICK_S
from metadata_gateway.distributed.states import StateRecord, decode_record
from metadata_gateway.distributed.store import decode_cue, encode_cue
from metadata_gateway.local_ivs import LocalIvs
from metadata_gateway.running.appkeys import SETTINGS

pytestmark = needs_redis

REPEAT_S = 1.0  # the state cues' repeat_ms, the shortest allowed
# A change of owner delays a repeat by at most a lease (plus a heartbeat to notice it); the rest
# is room for a loaded machine.
WORST_REPEAT_GAP_S = REPEAT_S + LEASE_MS / 1000 + TICK_S + 1.5


@pytest.fixture
async def pair(
    local_ivs: LocalIvs, redis_url: str
) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Replicas `ra` and `rb` on one Redis, every partition owned by one of them, with the
    alias `main` configured. Offline channels are probed once, then left alone: their cues stay
    queued, never in a call."""
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "insecure_no_auth": True,
        "offline_probe_interval": 60.0,
        "channels": {"main": new_channel(local_ivs, "main")},
    }
    async with (
        running_gateway(local_ivs, replica_id="ra", **settings) as a,
        running_gateway(local_ivs, replica_id="rb", **settings) as b,
    ):
        await wait_split(redis_url, replicas=2)
        yield a, b


async def _view(replica: RunningGateway, arn: str) -> dict[str, Any]:
    status, body = await replica.get(f"/v1/channels/{arn}")
    assert status == 200, body
    view: dict[str, Any] = body
    return view


async def _until(check: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    """Poll the async `check` until it returns something truthy; fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.05)


def _sends(ivs: LocalIvs, cue_id: str) -> list[float]:
    """When IVS received each payload carrying `cue_id` (Unix seconds)."""
    return [
        event.time
        for event in ivs.state.events
        if any(item["i"] == cue_id for item in orjson.loads(event.metadata)["c"])
    ]


def _others(pair: tuple[RunningGateway, RunningGateway], owner: str) -> RunningGateway:
    a, b = pair
    return b if owner == "ra" else a


async def _owner(replica: RunningGateway, arn: str) -> str:
    async def owned() -> str | None:
        owner: str | None = (await _view(replica, arn))["owner"]
        return owner

    owner: str = await _until(owned, f"an owner for {arn}")
    return owner


async def _delete(replica: RunningGateway, arn: str, cue_id: str) -> tuple[int, Any]:
    async with replica.http.delete(f"{replica.url}/v1/cues/{cue_id}?channel={arn}") as response:
        return response.status, await response.json()


async def test_cancel_answers_alike_from_every_replica(
    local_ivs: LocalIvs, pair: tuple[RunningGateway, RunningGateway]
) -> None:
    """Queued, scheduled and repeating cues are cancelled from the replica that does not own
    their channel as from the one that does; a second cancel is 404, a sent cue 409."""
    a, b = pair
    offline = [new_channel(local_ivs, f"off{i}", live=False) for i in range(6)]
    later = _ms(120)
    for i, arn in enumerate(offline):
        status, body, _ = await a.post(
            {
                "cues": [
                    {"channel": arn, "type": "custom", "id": f"q{i}", "data": {}},
                    _held(arn, f"s{i}", later),
                ]
            }
        )
        assert status == 202, body
    for i, arn in enumerate(offline):
        owner = await _owner(a, arn)
        # Probed once and found offline: its cue waits, out of any call.
        await _until(functools.partial(_has, a, arn, live=False), f"{arn} seen offline")
        asker = _others(pair, owner) if i % 2 == 0 else (a if owner == "ra" else b)
        assert await _delete(asker, arn, f"q{i}") == (
            200,
            {"id": f"q{i}", "channel": arn, "status": "cancelled", "state": "queued"},
        )
        assert await _delete(asker, arn, f"s{i}") == (
            200,
            {"id": f"s{i}", "channel": arn, "status": "cancelled", "state": "scheduled"},
        )
        for replica in pair:
            status, body = await _delete(replica, arn, f"q{i}")
            assert (status, body["error"]["code"]) == (404, "not_found")
            view = await _view(replica, arn)
            assert (view["pending"], view["scheduled"]) == (0, 0)

    live = new_channel(local_ivs, "live")
    status, body, _ = await a.post(
        {
            "cues": [
                {"channel": live, "type": "custom", "id": "sent-client-id", "data": {}},
                {
                    "channel": live,
                    "type": "state",
                    "key": "question",
                    "id": "st",
                    "data": {"q": 1},
                    "repeat_ms": round(REPEAT_S * 1000),
                },
            ]
        }
    )
    assert status == 202, body
    await _until(lambda: _at_least(local_ivs, "st", 2), "the state cue repeating")
    owner = await _owner(a, live)
    other = _others(pair, owner)
    status, body = await _delete(other, live, "sent-client-id")
    assert (status, body["error"]["code"]) == (409, "already_sent")
    cancelled_at = time.time()
    assert await _delete(other, live, "st") == (
        200,
        {"id": "st", "channel": live, "status": "cancelled", "state": "repeating"},
    )
    # A later cue on the same channel arrives only after the state's next repeat was due.
    status, body, _ = await a.post(_held(live, "marker", _ms(2.5)))
    await _until(lambda: _at_least(local_ivs, "marker", 1), "the marker cue")
    assert [t for t in _sends(local_ivs, "st") if t > cancelled_at + 0.5] == []

    # A server-made id, sent: the owner remembers it went out.
    status, body, _ = await a.post({"channel": live, "type": "custom", "data": {}})
    made = body["cues"][0]["id"]
    await _until(lambda: _at_least(local_ivs, made, 1), "the cue with a server-made id")
    status, body = await _delete(other, live, made)
    assert (status, body["error"]["code"]) == (409, "already_sent")


async def test_websocket_cancel_reaches_the_owner(
    local_ivs: LocalIvs, pair: tuple[RunningGateway, RunningGateway]
) -> None:
    """A WebSocket `cancel` on the replica that does not own the channel cancels the cue."""
    a, _ = pair
    arn = new_channel(local_ivs, "ws-cancel")
    status, body, _ = await a.post(_held(arn, "later", _ms(60)))
    assert status == 202, body
    owner = await _owner(a, arn)
    other = _others(pair, owner)
    async with other.http.ws_connect(f"{other.url}/v1/ws") as ws:
        await ws.send_json({"op": "cancel", "ref": 7, "channel": arn, "id": "later"})
        ack = await ws.receive_json(timeout=10)
    assert ack == {
        "op": "ack",
        "ref": 7,
        "cues": [{"id": "later", "channel": arn, "status": "cancelled", "state": "scheduled"}],
    }


async def test_cues_no_replica_has_read_are_cancelled_in_redis(
    local_ivs: LocalIvs, redis_url: str
) -> None:
    """A partition whose owner reads nothing (held by a replica that stalled) keeps its cues in
    Redis; a cancel from any replica takes them out there, and the views count them."""
    arn = new_channel(local_ivs, "stalled")
    partition = partition_of(arn, 16)
    redis = Redis.from_url(redis_url)
    try:
        await redis.set(PartitionKeys(partition).lease, "stalled-replica", px=60_000)
        settings: dict[str, Any] = {"redis_url": redis_url, "insecure_no_auth": True}
        async with running_gateway(local_ivs, replica_id="rc", **settings) as replica:
            await _until(lambda: _ready(replica), "the replica ready")
            status, body, _ = await replica.post(
                {
                    "cues": [
                        {"channel": arn, "type": "custom", "id": "now", "data": {}},
                        _held(arn, "later", _ms(60)),
                    ]
                }
            )
            assert status == 202, body
            view = await _view(replica, arn)
            assert (view["pending"], view["scheduled"], view["owner"]) == (1, 1, "stalled-replica")
            assert [c["id"] for c in (await _view(replica, arn))["scheduled_cues"]] == ["later"]
            assert (await _delete(replica, arn, "now"))[1]["state"] == "queued"
            assert (await _delete(replica, arn, "later"))[1]["state"] == "scheduled"
            view = await _view(replica, arn)
            assert (view["pending"], view["pending_bytes"], view["scheduled"]) == (0, 0, 0)
            assert await redis.xlen(PartitionKeys(partition).stream) == 0
    finally:
        await redis.aclose()
    assert _sends(local_ivs, "now") == []


async def test_channel_views_are_the_same_on_every_replica(
    local_ivs: LocalIvs, pair: tuple[RunningGateway, RunningGateway]
) -> None:
    """Whichever replica answers, a channel shows the deployment's pending, scheduled and
    repeating cues, liveness, last error and owner; the channel list is the same too."""
    a, b = pair
    live = new_channel(local_ivs, "views-live")
    offline = new_channel(local_ivs, "views-offline", live=False)
    later = _ms(120)
    cues: list[dict[str, Any]] = [
        {"channel": live, "type": "state", "key": "k", "id": "st", "data": {}, "repeat_ms": 60_000},
        _held(live, "s1", later),
        _held(live, "s2", later + 1000),
        *({"channel": offline, "type": "custom", "data": {"n": n}} for n in range(3)),
    ]
    status, body, _ = await b.post({"cues": cues})
    assert status == 202, body

    async def alike() -> tuple[dict[str, Any], dict[str, Any]] | None:
        views = [(await _view(r, live), await _view(r, offline)) for r in pair]
        if views[0] != views[1]:
            return None
        on_live, on_offline = views[0]
        ready = on_live["repeating"] == 1 and on_offline["live"] is False
        return views[0] if ready else None

    on_live, on_offline = await _until(alike, "the same views on both replicas")
    assert on_live["owner"] in ("ra", "rb")
    assert on_offline["owner"] in ("ra", "rb")
    assert (on_live["pending"], on_live["scheduled"], on_live["live"]) == (0, 2, True)
    assert [c["id"] for c in on_live["scheduled_cues"]] == ["s1", "s2"]
    assert on_live["repeating_cues"] == [{"id": "st", "key": "k", "repeat_ms": 60_000}]
    assert on_live["sent_requests"] >= 1
    assert on_live["delivered_cues"] >= 1
    assert (on_offline["pending"], on_offline["scheduled"]) == (3, 0)
    assert on_offline["last_error"].startswith("not_broadcasting")

    async def listed() -> list[Any] | None:
        pages = [(await r.get("/v1/channels"))[1]["channels"] for r in (a, b)]
        return pages[0] if pages[0] == pages[1] else None

    page = await _until(listed, "the same channel list on both replicas")
    main = a.app[SETTINGS].channels["main"]
    assert [(c["channel"], c["alias"]) for c in page] == [
        (main, "main"),
        (live, None),
        (offline, None),
    ]


async def _ready(replica: RunningGateway) -> bool:
    async with replica.http.get(f"{replica.url}/readyz") as response:
        return response.status == 200


async def _has(replica: RunningGateway, arn: str, **expected: Any) -> bool:
    view = await _view(replica, arn)
    return all(view[k] == v for k, v in expected.items())


async def _at_least(ivs: LocalIvs, cue_id: str, count: int) -> bool:
    return len(_sends(ivs, cue_id)) >= count


@pytest.mark.timeout(120)
async def test_states_and_schedules_outlive_their_owner(
    local_ivs: LocalIvs, redis_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The owner of a channel is killed (SIGKILL), then comes back and takes it over again
    (a graceful hand-over): its state cue goes on repeating on schedule, a gap of at most a
    lease; its scheduled cue is sent once at its time; cancelled and superseded cues never."""
    arn = new_channel(local_ivs, "show")
    args = ["--endpoint-url", local_ivs.url, "--insecure-no-auth", "--redis-url", redis_url]
    args += ["--drain-timeout", "1"]
    group = {
        name: Replica(free_port(), [*args, "--replica-id", name], tmp_path / f"{name}.log")
        for name in ("r0", "r1")
    }
    try:
        for replica in group.values():
            replica.start()
        await asyncio.gather(*(r.ready(http) for r in group.values()))
        await wait_split(redis_url, replicas=2)
        first = group["r0"].url

        async def post(cue: dict[str, Any]) -> None:
            async with http.post(f"{first}/v1/cues", json={"channel": arn, **cue}) as response:
                assert response.status == 202, await response.text()

        repeat_ms = round(REPEAT_S * 1000)
        await post({"type": "state", "key": "q", "id": "old", "data": {}, "repeat_ms": repeat_ms})
        await _until(lambda: _at_least(local_ivs, "old", 1), "the first state")
        await post({"type": "state", "key": "q", "id": "new", "data": {}, "repeat_ms": repeat_ms})
        await post({"type": "state", "key": "x", "id": "stop", "data": {}, "repeat_ms": repeat_ms})
        await _until(lambda: _at_least(local_ivs, "stop", 1), "the states")
        due = time.time() + 6.0
        due_ms = round(due * 1000)
        await post({"type": "custom", "id": "due", "data": {}, "not_before": due_ms})
        await post({"type": "custom", "id": "gone", "data": {}, "not_before": due_ms})
        async with http.delete(f"{first}/v1/cues/gone?channel={arn}") as response:
            assert response.status == 200
        async with http.delete(f"{first}/v1/cues/stop?channel={arn}") as response:
            assert response.status == 200
        stopped_at = time.time()

        async with http.get(f"{first}/v1/channels/{arn}") as response:
            owner = (await response.json())["owner"]
        group[owner].kill()
        killed_at = time.time()
        await _until(lambda: _at_least(local_ivs, "due", 1), "the scheduled cue", within=20)
        await _until(lambda: _count_after(local_ivs, "new", killed_at, 3), "repeats after the kill")

        group[owner].start()  # same name: it is preferred for the same partitions again
        await group[owner].ready(http)
        back_at = time.time()

        async def returned() -> bool:
            async with http.get(f"{first}/v1/channels/{arn}") as response:
                return bool((await response.json())["owner"] == owner)

        await _until(returned, "the restarted replica owning the channel again")
        await _until(lambda: _count_after(local_ivs, "new", back_at, 3), "repeats after return")
    finally:
        for replica in group.values():
            replica.stop()

    new = _sends(local_ivs, "new")
    gaps = [later - earlier for earlier, later in itertools.pairwise(new)]
    print(f"\nstate repeat gaps: max {max(gaps):.2f} s over {len(gaps)}; kill at {killed_at:.2f}")
    assert max(gaps) <= WORST_REPEAT_GAP_S, gaps
    assert [t for t in _sends(local_ivs, "old") if t >= new[0]] == []
    assert [t for t in _sends(local_ivs, "stop") if t > stopped_at + 0.5] == []
    assert _sends(local_ivs, "gone") == []
    (sent,) = _sends(local_ivs, "due")
    assert due - 0.05 <= sent <= due + WORST_REPEAT_GAP_S
    assert len(delivered_ids(local_ivs.state.events)) > 0


def _held(channel: str, cue_id: str, not_before: int) -> dict[str, Any]:
    """A cue held until `not_before` (Unix ms)."""
    return {
        "channel": channel,
        "type": "custom",
        "id": cue_id,
        "data": {},
        "not_before": not_before,
    }


def _ms(seconds_from_now: float) -> int:
    """A not_before that many seconds from now, in Unix milliseconds."""
    return round((time.time() + seconds_from_now) * 1000)


async def _count_after(ivs: LocalIvs, cue_id: str, after: float, count: int) -> bool:
    return len([t for t in _sends(ivs, cue_id) if t > after]) >= count


def test_a_cue_keeps_every_field_through_redis() -> None:
    """What the next owner reads back is the cue that was accepted: priority, TTL, schedule,
    repeat and persistence included."""
    cue = Cue(
        id="q-7",
        channel="arn:aws:ivs:us-west-2:123456789012:channel/abcdEFGH1234",
        type="state",
        item=b'{"t":"state","d":{"q":"\\u00e9t\\u00e9 ?"}}',
        key="question",
        ttl=42.5,
        priority=Priority.HIGH,
        client_id=True,
        not_before=1_796_000_000.25,
        repeat=2.0,
        persist=True,
    )
    assert decode_cue(encode_cue(cue)) == cue
    record = StateRecord(cue, expires_wall=1_796_000_042.75, last_sent_wall=1_796_000_001.5)
    assert decode_record(record.encode()) == record
