"""The gateway end to end: HTTP in, aiobotocore out, the local IVS recording what viewers get."""

from __future__ import annotations

import asyncio
import math
import re
import time

import orjson
import pytest
from gateway_harness import max_calls_in_window, new_channel, running_gateway

from metadata_gateway.local_ivs import Fault, LocalIvs


def payload_ids(ivs: LocalIvs, arn: str) -> list[str]:
    ids: list[str] = []
    for event in ivs.state.events:
        if event.channel_arn == arn:
            ids += [c["i"] for c in orjson.loads(event.metadata)["c"]]
    return ids


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


async def test_burst_of_300_cues_arrives_complete_in_order_within_limits(
    local_ivs: LocalIvs,
) -> None:
    """300 small cues on one channel reach IVS once each, in order, <= 5 calls/s, no 429."""
    arn = new_channel(local_ivs, "burst")
    async with running_gateway(local_ivs) as gw:
        sent: list[str] = []
        for start in range(0, 300, 100):
            batch = [
                {"channel": arn, "type": "custom", "data": {"n": n}, "id": f"b{n}"}
                for n in range(start, start + 100)
            ]
            status, body, _ = await gw.post({"cues": batch})
            assert status == 202
            sent += [c["id"] for c in body["cues"]]
        await gw.wait_for(lambda: len(payload_ids(local_ivs, arn)) == 300)
        events = [e for e in local_ivs.state.events if e.channel_arn == arn]
        assert payload_ids(local_ivs, arn) == sent
        assert all(len(e.metadata.encode()) <= 1024 for e in events)
        assert max_calls_in_window([e.time for e in events]) <= 5
        assert local_ivs.state.stats()["PutMetadata"].get("ThrottlingException", 0) == 0
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_delivered_total{type="custom"}') == 300
        assert metric(text, 'metadata_gateway_put_metadata_requests_total{outcome="ok"}') == len(
            events
        )


async def test_busy_channels_share_the_account_budget_fairly(local_ivs: LocalIvs) -> None:
    """40 busy channels under an account rate of 20/s: never > 20 calls in 1 s, equal shares."""
    arns = [new_channel(local_ivs, f"fair{n}") for n in range(40)]
    async with running_gateway(local_ivs, account_rate=20) as gw:
        big = "z" * 900  # one cue per call
        for round_ in range(2):
            cues = [{"channel": a, "type": "custom", "data": {"r": round_, "s": big}} for a in arns]
            for start in range(0, 40, 20):
                status, _, _ = await gw.post({"cues": cues[start : start + 20]})
                assert status == 202
        await gw.wait_for(lambda: len(local_ivs.state.events) == 80, within=15)
        times = [e.time for e in local_ivs.state.events]
        assert max_calls_in_window(times) <= 20
        first_round = list(local_ivs.state.events)[:40]
        assert {e.channel_arn for e in first_round} == set(arns)


async def test_collapse_key_latest_wins_while_channel_is_offline(local_ivs: LocalIvs) -> None:
    """Poll updates for one poll replace each other; only the latest reaches viewers."""
    arn = new_channel(local_ivs, "polls", live=False)
    async with running_gateway(local_ivs) as gw:
        for votes in (1, 2, 3):
            status, _, _ = await gw.post(
                {"channel": arn, "type": "poll", "data": {"poll_id": "p", "votes": votes}}
            )
            assert status == 202
            # The first one goes out at once and comes back ChannelNotBroadcasting.
            await gw.wait_for(lambda: gw.gateway.channels[arn].live is False)
        status, info = await gw.get(f"/v1/channels/{arn}")
        assert info["pending"] == 1
        local_ivs.state.start_stream(arn)
        await gw.wait_for(lambda: len(payload_ids(local_ivs, arn)) == 1)
        [event] = [e for e in local_ivs.state.events if e.channel_arn == arn]
        assert orjson.loads(event.metadata)["c"][0]["d"]["votes"] == 3
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_dropped_total{reason="superseded"}') == 2


async def test_ttl_expiry_drops_stale_cues_never_sends_them(local_ivs: LocalIvs) -> None:
    """A cue whose TTL passes while its channel is offline is dropped and counted, not sent."""
    arn = new_channel(local_ivs, "stale", live=False)
    async with running_gateway(local_ivs) as gw:
        status, _, _ = await gw.post(
            {"channel": arn, "type": "caption", "data": {"text": "late"}, "ttl_ms": 150}
        )
        assert status == 202
        channel = gw.gateway.channels[arn]
        await gw.wait_for(lambda: not channel.queue and channel.live is False)
        _, info = await gw.get(f"/v1/channels/{arn}")
        assert (info["pending"], info["live"]) == (0, False)
        assert "not_broadcasting" in info["last_error"]
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_dropped_total{reason="expired"}') == 1
        # Once the stream is up, a fresh cue goes out, and nothing before it.
        local_ivs.state.start_stream(arn)
        fresh = {"channel": arn, "type": "caption", "id": "fresh", "data": {"text": "now"}}
        status, _, _ = await gw.post(fresh)
        assert status == 202
        await gw.wait_for(lambda: payload_ids(local_ivs, arn) != [])
        assert payload_ids(local_ivs, arn) == ["fresh"]


async def test_idempotent_ids_queue_and_deliver_once(local_ivs: LocalIvs) -> None:
    """The same id on a channel is queued once; repeats answer duplicate, delivered or not."""
    arn = new_channel(local_ivs, "idem")
    async with running_gateway(local_ivs) as gw:
        cue = {"channel": arn, "type": "quiz", "data": {"question_id": "q1"}, "id": "q1-live"}
        _, first, _ = await gw.post(cue)
        assert first["cues"] == [{"id": "q1-live", "channel": arn, "status": "queued"}]
        await gw.wait_for(lambda: payload_ids(local_ivs, arn) == ["q1-live"])
        _, again, _ = await gw.post(cue)
        assert again["cues"][0] | {} == {
            "id": "q1-live",
            "channel": arn,
            "status": "duplicate",
            "delivered": True,
        }
        # A channel's calls go out in order: once a later cue arrived, a repeat would have too.
        _, marker, _ = await gw.post({**cue, "id": "marker"})
        assert marker["cues"][0]["status"] == "queued"
        await gw.wait_for(lambda: "marker" in payload_ids(local_ivs, arn))
        assert payload_ids(local_ivs, arn) == ["q1-live", "marker"]


async def test_request_errors_have_codes_and_lose_nothing(local_ivs: LocalIvs) -> None:
    """Each bad request gets its status and code; accepted cues are unaffected."""
    arn = new_channel(local_ivs, "errors")
    async with running_gateway(
        local_ivs, channels={"show": arn}, max_body_bytes=4096, max_cue_bytes=1024
    ) as gw:
        good = {"channel": "show", "type": "quiz", "data": {"question_id": 1}}
        async with gw.http.post(f"{gw.url}/v1/cues", data=b"{nope") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_json"
        status, body, _ = await gw.post({"cues": [good, {"channel": "show", "type": "quiz"}]})
        assert (status, body["error"]["code"]) == (400, "invalid_cue")
        assert (body["error"]["index"], body["error"]["field"]) == (1, "data")
        status, body, _ = await gw.post({**good, "data": {"question_id": "é" * 600}})
        assert (status, body["error"]["code"], body["error"]["limit"]) == (
            413,
            "cue_too_large",
            1024,
        )
        assert body["error"]["size"] > 1024
        big = {"cues": [good] * 100}
        status, body, _ = await gw.post(big)
        assert (status, body["error"]["code"]) == (413, "body_too_large")
        status, body, _ = await gw.post({**good, "channel": "nobody"})
        assert (status, body["error"]["code"]) == (404, "unknown_channel")
        status, body, _ = await gw.post({**good, "channel": "arn:aws:ivs:x"})
        assert (status, body["error"]["code"], body["error"]["field"]) == (
            400,
            "invalid_cue",
            "channel",
        )
        await gw.wait_for(lambda: True)
        assert payload_ids(local_ivs, arn) == []  # nothing from a refused batch was queued
        status, body, _ = await gw.post(good)
        assert status == 202
        await gw.wait_for(lambda: len(payload_ids(local_ivs, arn)) == 1)
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_rejected_total{reason="invalid_cue"}') == 3


async def test_full_queue_answers_429_with_a_truthful_retry_after(local_ivs: LocalIvs) -> None:
    """Past the channel bound: 429 queue_full; waiting Retry-After makes room."""
    arn = new_channel(local_ivs, "full")
    async with running_gateway(local_ivs, channel_max_cues=10) as gw:
        big = "q" * 900  # one cue per call: the queue drains at 5 cues/s
        cues = [{"channel": arn, "type": "custom", "data": {"s": big, "n": n}} for n in range(15)]
        status, _, _ = await gw.post({"cues": cues[:10]})
        assert status == 202
        status, body, headers = await gw.post({"cues": cues[10:15]})
        assert (status, body["error"]["code"]) == (429, "queue_full")
        wait_ms = body["error"]["retry_after_ms"]
        assert int(headers["Retry-After"]) == math.ceil(wait_ms / 1000)
        assert 0 < wait_ms <= 3000
        await asyncio.sleep(wait_ms / 1000)
        status, _, _ = await gw.post({"cues": cues[10:15]})
        assert status == 202


async def test_ivs_errors_are_handled_each_in_its_way(local_ivs: LocalIvs) -> None:
    """Throttling is retried, validation drops with a reason, an unknown channel is not_found."""
    arn = new_channel(local_ivs, "faulty")
    async with running_gateway(local_ivs) as gw:
        local_ivs.state.faults.set(
            Fault.from_json({"error": "ThrottlingException", "rate": 1.0, "channelArn": arn})
        )
        await gw.post({"channel": arn, "type": "quiz", "data": {"question_id": 1}, "id": "t"})
        await gw.wait_for(lambda: gw.gateway.channels[arn].sent_requests >= 1)
        local_ivs.state.faults.clear()
        await gw.wait_for(lambda: payload_ids(local_ivs, arn) == ["t"], within=5)
        local_ivs.state.faults.set(Fault.from_json({"error": "ValidationException", "rate": 1.0}))
        await gw.post({"channel": arn, "type": "quiz", "data": {"question_id": 2}})
        await gw.wait_for(lambda: "validation" in (gw.gateway.channels[arn].last_error or ""))
        local_ivs.state.faults.clear()
        ghost = "arn:aws:ivs:us-west-2:123456789012:channel/ghost0000000"
        await gw.post({"channel": ghost, "type": "quiz", "data": {"question_id": 3}})
        await gw.wait_for(
            lambda: (gw.gateway.channels[ghost].last_error or "").startswith("not_found")
        )
        text = await gw.metrics()
        assert (
            metric(text, 'metadata_gateway_put_metadata_requests_total{outcome="throttled"}') >= 1
        )
        assert metric(text, 'metadata_gateway_cues_dropped_total{reason="ivs_error"}') == 2


async def test_drain_sends_what_is_queued_and_refuses_new_cues(local_ivs: LocalIvs) -> None:
    """While draining, /readyz is 503 and new cues get 503; queued cues still go out."""
    arn = new_channel(local_ivs, "drain")
    async with running_gateway(local_ivs) as gw:
        cues = [{"channel": arn, "type": "custom", "data": {"s": "d" * 900}} for _ in range(8)]
        await gw.post({"cues": cues})
        draining = asyncio.create_task(gw.engine.drain(10.0))
        await asyncio.sleep(0.05)
        assert (await gw.get("/readyz"))[0] == 503
        status, body, headers = await gw.post(cues[0])
        assert (status, body["error"]["code"], headers["Retry-After"]) == (
            503,
            "shutting_down",
            "5",
        )
        assert await draining == 0
        assert len(payload_ids(local_ivs, arn)) == 8


async def test_channels_listing_and_lookup(local_ivs: LocalIvs) -> None:
    """Aliases are always listed; pages follow a cursor; one channel by alias or ARN."""
    arns = [new_channel(local_ivs, f"list{n}") for n in range(3)]
    async with running_gateway(local_ivs, channels={"main": arns[0]}) as gw:
        for arn in arns[1:]:
            await gw.post({"channel": arn, "type": "quiz", "data": {"question_id": 1}})
        _, page = await gw.get("/v1/channels?limit=2")
        assert [c["alias"] for c in page["channels"]] == ["main", None]
        _, rest = await gw.get(f"/v1/channels?limit=2&cursor={page['next_cursor']}")
        assert rest["next_cursor"] is None
        assert len(rest["channels"]) == 1
        status, one = await gw.get("/v1/channels/main")
        assert (status, one["channel"]) == (200, arns[0])
        status, _ = await gw.get("/v1/channels/nope")
        assert status == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_endpoints(local_ivs: LocalIvs, path: str) -> None:
    """Health and readiness answer 200 while serving."""
    async with running_gateway(local_ivs) as gw:
        status, _ = await gw.get(path)
        assert status == 200


async def test_cancel_over_http_and_websocket(local_ivs: LocalIvs) -> None:
    """Cancel answers the former state, 404 for unknown, 409 once sent; submitters hear of it."""
    arn = new_channel(local_ivs, "cancel")
    async with running_gateway(local_ivs, channels={"c": arn}) as gw:
        later = {"channel": "c", "type": "quiz", "data": {"question_id": 1}, "id": "later"}
        hour_ahead = round((time.time() + 3600) * 1000)
        status, _, _ = await gw.post({**later, "not_before": hour_ahead})
        assert status == 202
        async with gw.http.delete(f"{gw.url}/v1/cues/later?channel=c") as response:
            assert response.status == 200
            assert await response.json() == {
                "id": "later",
                "channel": arn,
                "status": "cancelled",
                "state": "scheduled",
            }
        async with gw.http.delete(f"{gw.url}/v1/cues/later?channel=c") as response:
            assert (response.status, (await response.json())["error"]["code"]) == (404, "not_found")
        await gw.post({**later, "id": "now"})
        await gw.wait_for(lambda: payload_ids(local_ivs, arn) == ["now"])
        async with gw.http.delete(f"{gw.url}/v1/cues/now?channel={arn}") as response:
            assert (response.status, (await response.json())["error"]["code"]) == (
                409,
                "already_sent",
            )
        async with gw.http.ws_connect(f"{gw.url}/v1/ws") as ws:
            held = {**later, "id": "ws-held", "not_before": hour_ahead}
            await ws.send_str(orjson.dumps({"op": "cue", "ref": 1, **held}).decode())
            await ws.send_str(
                orjson.dumps({"op": "cancel", "ref": 2, "channel": "c", "id": "ws-held"}).decode()
            )
            await ws.send_str(
                orjson.dumps({"op": "cancel", "ref": 3, "channel": "c", "id": "ghost"}).decode()
            )
            frames = [orjson.loads((await ws.receive(timeout=5)).data) for _ in range(4)]
        ops = [(f["op"], f.get("ref"), f.get("reason")) for f in frames]
        assert ops == [
            ("ack", 1, None),
            ("dropped", None, "cancelled"),
            ("ack", 2, None),
            ("nack", 3, None),
        ]
        assert frames[3]["error"]["code"] == "not_found"
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_dropped_total{reason="cancelled"}') == 2


async def test_nothing_is_sent_during_the_startup_hold(local_ivs: LocalIvs) -> None:
    """After a start, the gateway waits one window: a previous process's calls still count."""
    arn = new_channel(local_ivs, "hold")
    started = time.time()
    async with running_gateway(local_ivs, startup_hold=0.5) as gw:
        status, _, _ = await gw.post({"channel": arn, "type": "quiz", "data": {"question_id": 1}})
        assert status == 202
        await gw.wait_for(lambda: len(payload_ids(local_ivs, arn)) == 1)
    assert local_ivs.state.events_of(arn)[0].time >= started + 0.5


async def test_cues_for_regions_ivs_does_not_have_are_refused(local_ivs: LocalIvs) -> None:
    """A well-formed ARN in a made-up region is refused at the door, not queued for ever."""
    async with running_gateway(local_ivs) as gw:
        made_up = "arn:aws:ivs:zz-north-9:123456789012:channel/abcdEFGH1234"
        status, body, _ = await gw.post(
            {"channel": made_up, "type": "quiz", "data": {"question_id": 1}}
        )
        assert (status, body["error"]["code"], body["error"]["field"]) == (
            400,
            "invalid_cue",
            "channel",
        )
        assert "zz-north-9" in body["error"]["message"]
        assert gw.gateway.channels == {}
