"""The client library against real gateways: HTTP sends with retries, and a reconnecting stream."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from gateway_harness import new_channel, running_gateway

from metadata_gateway.client import (
    Backoff,
    Cancelled,
    CueStream,
    GatewayClient,
    GatewayError,
    GatewayUnavailable,
    Receipt,
    RetryPolicy,
)
from metadata_gateway.config import Settings
from metadata_gateway.local_ivs import LocalIvs
from metadata_gateway.running.app import create_app
from metadata_gateway.running.appkeys import GATEWAY, METRICS, SHUTDOWN
from metadata_gateway.running.shutdown import Phase
from metadata_gateway.sending.sender import IvsSender

BIG = "z" * 900  # a cue this size fills a PutMetadata call alone: a channel sends 5 cues/s


def payload_ids(ivs: LocalIvs, arn: str) -> list[str]:
    """The cue ids viewers of `arn` received, in order."""
    ids: list[str] = []
    for event in ivs.state.events:
        if event.channel_arn == arn:
            ids += [c["i"] for c in orjson.loads(event.metadata)["c"]]
    return ids


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortGateway:
    """A gateway on a fixed port, stopped as on SIGTERM, so that a replacement can take over."""

    def __init__(self, app: web.Application, runner: web.AppRunner, sender: IvsSender) -> None:
        self.app, self.runner, self.sender = app, runner, sender
        self.stopped = False

    @classmethod
    async def start(cls, ivs: LocalIvs, port: int, **overrides: Any) -> PortGateway:
        settings = Settings(
            port=port, endpoint_url=ivs.url, offline_probe_interval=0.3, **overrides
        )
        sender = IvsSender(endpoint_url=ivs.url, credentials=("test", "test"))
        await sender.client(settings.region)
        app = create_app(settings, sink=sender)
        runner = web.AppRunner(app, handle_signals=False)
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        except BaseException:
            await runner.cleanup()
            await sender.close()
            raise
        return cls(app, runner, sender)

    async def stop(self, drain: float = 5.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.app[SHUTDOWN].run(through=Phase.DRAIN, drain_s=drain)  # as serve() does
        await self.runner.cleanup()
        await self.sender.close()


@asynccontextmanager
async def gateways(ivs: LocalIvs, port: int, **overrides: Any) -> AsyncIterator[list[PortGateway]]:
    """The gateway started on `port`; whichever of the list runs at the end is stopped."""
    running = [await PortGateway.start(ivs, port, **overrides)]
    try:
        yield running
    finally:
        await running[-1].stop(drain=0.1)


async def collect(stream: CueStream, into: list[Receipt]) -> None:
    async for receipt in stream.receipts():
        into.append(receipt)


def cue(arn: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"channel": arn, "type": "custom", "data": {"n": n}, **extra}


# ---- pure parts -------------------------------------------------------------------------


def test_backoff_grows_with_jitter_up_to_its_maximum() -> None:
    """Attempt n waits between half and all of initial * 2**n, never more than the maximum."""
    backoff = Backoff(initial=0.1, maximum=1.0)
    assert [backoff.delay(n, rand=lambda: 0.0) for n in range(5)] == [0.05, 0.1, 0.2, 0.4, 0.5]
    assert [backoff.delay(n, rand=lambda: 1.0) for n in (0, 3, 60)] == [0.1, 0.8, 1.0]


def test_retry_policy_honours_retry_after_within_its_bounds() -> None:
    """Retry-After is waited (plus at most 10%); past max_retries or the deadline it gives up."""
    policy = RetryPolicy(max_retries=2, deadline=1.0, backoff=Backoff(0.1, 1.0))
    assert policy.wait(0, started=0.0, now=0.0, retry_after=0.3, rand=lambda: 0.0) == 0.3
    assert policy.wait(1, started=0.0, now=0.5, retry_after=0.3, rand=lambda: 1.0) == 0.33
    assert policy.wait(2, started=0.0, now=0.0, retry_after=0.1) is None
    assert policy.wait(0, started=0.0, now=0.9, retry_after=0.3) is None


# ---- HTTP -------------------------------------------------------------------------------


async def test_send_and_send_many_give_every_cue_an_id(local_ivs: LocalIvs) -> None:
    """Cues without an id get one before they leave; ids given are kept; repeats are duplicates."""
    arn = new_channel(local_ivs, "ids")
    async with running_gateway(local_ivs) as gw, GatewayClient(gw.url) as client:
        plain, mine = cue(arn, 0), cue(arn, 1, id="mine")
        one = await client.send(plain)
        many = await client.send_many([mine, cue(arn, 2)])
        assert "id" not in plain  # the caller's cue is left alone
        assert (one.status, one.channel, len(one.id)) == ("queued", arn, 20)
        assert (many[0].id, len(many[1].id)) == ("mine", 20)
        await gw.wait_for(lambda: len(payload_ids(local_ivs, arn)) == 3)
        assert payload_ids(local_ivs, arn) == [one.id, "mine", many[1].id]
        again = await client.send(mine)
        assert (again.status, again.delivered) == ("duplicate", True)
        assert client.retries == 0


async def test_queue_full_is_retried_after_retry_after(
    local_ivs: LocalIvs, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 queue_full is waited out as the gateway asks, then the same cue goes through once."""
    arn = new_channel(local_ivs, "full")
    caplog.set_level(logging.INFO, logger="metadata_gateway.client")
    async with (
        running_gateway(local_ivs, channel_max_cues=2) as gw,
        GatewayClient(gw.url) as client,
    ):
        results = [await client.send(cue(arn, n, data={"s": BIG})) for n in range(6)]
        assert all(r.status == "queued" for r in results)
        assert client.retries >= 1
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_rejected_total{reason="queue_full"}') == (
            client.retries
        )
        # The gateway asks for ~0.24 s (one call at 5/s); a backoff alone would wait <= 0.1 s.
        waits = [r.__dict__["wait_s"] for r in caplog.records if r.getMessage() == "retrying cues"]
        assert len(waits) == client.retries
        assert all(0.2 <= wait <= 0.5 for wait in waits)
        await gw.wait_for(lambda: len(payload_ids(local_ivs, arn)) == 6)
        assert payload_ids(local_ivs, arn) == [r.id for r in results]


async def test_refused_cues_raise_gateway_error_without_retrying(local_ivs: LocalIvs) -> None:
    """404, 400 and 413 answers raise GatewayError with status, code and details at once."""
    arn = new_channel(local_ivs, "refused")
    async with running_gateway(local_ivs) as gw, GatewayClient(gw.url) as client:
        with pytest.raises(GatewayError) as unknown:
            await client.send(cue("nobody", 0))
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_channel")
        with pytest.raises(GatewayError) as invalid:
            await client.send_many([cue(arn, 0), {"channel": arn, "type": "quiz"}])
        assert (invalid.value.status, invalid.value.code) == (400, "invalid_cue")
        assert (invalid.value.details["index"], invalid.value.details["field"]) == (1, "data")
        with pytest.raises(GatewayError) as large:
            await client.send(cue(arn, 0, data={"s": BIG * 80}))
        assert (large.value.status, large.value.code) == (413, "cue_too_large")
        assert (client.retries, client.requests) == (0, 3)
        with pytest.raises(ValueError, match="1 to 100"):
            await client.send_many([cue(arn, n) for n in range(101)])


async def test_connection_errors_are_retried_until_the_gateway_is_up(local_ivs: LocalIvs) -> None:
    """A send made while nothing listens goes through once the gateway starts; else it gives up."""
    arn = new_channel(local_ivs, "late")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with GatewayClient(url, max_retries=2, retry_deadline=0.2) as impatient:
        with pytest.raises(GatewayUnavailable) as down:
            await impatient.send(cue(arn, 0))
        assert down.value.code == "unreachable"
        assert impatient.requests <= 3
    async with GatewayClient(url, backoff=Backoff(0.05, 0.2), max_retries=20) as client:
        sending = asyncio.create_task(client.send(cue(arn, 1, id="late-1")))
        deadline = asyncio.get_running_loop().time() + 5
        while client.retries < 2:  # refused while nothing listens
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        async with gateways(local_ivs, port):
            result = await sending
            assert result.status == "queued"
            assert client.retries >= 2
            deadline = asyncio.get_running_loop().time() + 5
            while payload_ids(local_ivs, arn) != ["late-1"]:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)


async def test_token_is_sent_on_requests_and_the_websocket_upgrade() -> None:
    """The token goes as a Bearer header on requests and the upgrade; a given session stays open."""
    seen: list[tuple[str, str | None]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, request.headers.get("Authorization")))
        if request.path == "/v1/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close()
            return ws
        body = {"cues": [{"id": "a", "channel": "c", "status": "queued"}]}
        return web.json_response(body, status=202)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            async with GatewayClient(
                f"http://{host}:{port}", session=http, token="s3cret"
            ) as client:
                await client.send({"channel": "c", "type": "custom", "data": {}})
                async with client.stream(receipts=False):
                    pass
            assert not http.closed
    finally:
        await runner.cleanup()
    assert seen[:2] == [("/v1/cues", "Bearer s3cret"), ("/v1/ws", "Bearer s3cret")]


# ---- stream -----------------------------------------------------------------------------


async def test_stream_acks_and_receipts_50_cues(local_ivs: LocalIvs) -> None:
    """50 cues, one at a time and in batches: every one acked, then receipted sent once."""
    arn = new_channel(local_ivs, "stream50")
    async with running_gateway(local_ivs) as gw, GatewayClient(gw.url) as client:
        receipts: list[Receipt] = []
        async with client.stream() as stream:
            collector = asyncio.create_task(collect(stream, receipts))
            singles = await asyncio.gather(*(stream.send(cue(arn, n)) for n in range(30)))
            batches = [
                await stream.send_many([cue(arn, n) for n in range(k, k + 10)]) for k in (30, 40)
            ]
            acked = [r.id for r in singles] + [r.id for b in batches for r in b]
            assert len(set(acked)) == 50
            await asyncio.wait_for(stream.wait_settled(), 10)
            assert stream.unsettled == 0
        await collector
        sent = [i for r in receipts for i in r.ids]
        assert sorted(sent) == sorted(acked)
        assert all(r.op == "sent" and r.channel == arn and r.at for r in receipts)
        assert sorted(payload_ids(local_ivs, arn)) == sorted(acked)


async def test_stream_nack_raises_and_the_stream_carries_on(local_ivs: LocalIvs) -> None:
    """A refused cue raises GatewayError in its send; the connection and other sends go on."""
    arn = new_channel(local_ivs, "nack")
    async with (
        running_gateway(local_ivs) as gw,
        GatewayClient(gw.url) as client,
        client.stream(receipts=False) as stream,
    ):
        with pytest.raises(GatewayError) as refused:
            await stream.send(cue("nobody", 0))
        assert (refused.value.status, refused.value.code) == (404, "unknown_channel")
        with pytest.raises(GatewayError) as invalid:
            await stream.send_many([cue(arn, 0), {"channel": arn, "type": "nope", "data": {}}])
        assert (invalid.value.code, invalid.value.details["index"]) == ("invalid_cue", 1)
        result = await stream.send(cue(arn, 2))
        assert (result.status, stream.reconnects) == ("queued", 0)
        await asyncio.wait_for(stream.wait_settled(), 5)
        with pytest.raises(RuntimeError, match="receipts=False"):
            await anext(stream.receipts())


def later(seconds: float) -> int:
    """A `not_before` this many seconds from now, in unix milliseconds."""
    return round((time.time() + seconds) * 1000)


async def test_cancel_over_http_removes_a_scheduled_cue(local_ivs: LocalIvs) -> None:
    """`cancel` answers where the cue stood; cancelling it again raises not_found (404)."""
    arn = new_channel(local_ivs, "cancelhttp")
    async with (
        running_gateway(local_ivs, channels={"show": arn}) as gw,
        GatewayClient(gw.url) as client,
    ):
        held = await client.send(cue(arn, 0, id="later/1", not_before=later(60)))
        cancelled = await client.cancel(held.id, "show")  # an alias, and an id needing escapes
        assert cancelled == Cancelled(id="later/1", channel=arn, state="scheduled")
        with pytest.raises(GatewayError) as again:
            await client.cancel(held.id, arn)
        assert (again.value.status, again.value.code) == (404, "not_found")
        status, body = await gw.get(f"/v1/channels/{arn.replace('/', '%2F')}")
        assert (status, body["scheduled"]) == (200, 0)
        with pytest.raises(ValueError, match="cue id and a channel"):
            await client.cancel("", arn)


async def test_cancel_over_the_stream_is_acked_and_its_cue_receipted_dropped(
    local_ivs: LocalIvs,
) -> None:
    """A cancel frame's ack resolves `stream.cancel`; the cue's receipt is dropped/cancelled."""
    arn = new_channel(local_ivs, "cancelws")
    async with (
        running_gateway(local_ivs) as gw,
        GatewayClient(gw.url) as client,
        client.stream() as stream,
    ):
        receipts: list[Receipt] = []
        reader = asyncio.create_task(collect(stream, receipts))
        held = await stream.send(cue(arn, 0, not_before=later(60)))
        assert stream.unsettled == 1
        cancelled = await stream.cancel(held.id, arn)
        assert cancelled == Cancelled(id=held.id, channel=arn, state="scheduled")
        await asyncio.wait_for(stream.wait_settled(), 5)
        with pytest.raises(GatewayError) as unknown:
            await stream.cancel(held.id, arn)
        assert (unknown.value.status, unknown.value.code) == (404, "not_found")
        await stream.aclose()
        await asyncio.wait_for(reader, 5)
    assert receipts == [Receipt("dropped", arn, (held.id,), reason="cancelled")]
    assert payload_ids(local_ivs, arn) == []


async def test_stream_gives_up_after_the_reconnect_deadline(local_ivs: LocalIvs) -> None:
    """When the gateway stays away, the waiting send and the receipts raise, in bounded time."""
    arn = new_channel(local_ivs, "gone")
    port = free_port()
    async with (
        gateways(local_ivs, port) as running,
        GatewayClient(f"http://127.0.0.1:{port}") as client,
        client.stream(reconnect_deadline=0.3) as stream,
    ):
        await running[-1].stop(drain=0.1)
        with pytest.raises(GatewayUnavailable) as gone:
            await asyncio.wait_for(stream.send(cue(arn, 0)), 2)
        assert gone.value.code == "unreachable"
        with pytest.raises(GatewayUnavailable):
            await anext(stream.receipts())
        with pytest.raises(GatewayUnavailable):
            await stream.send(cue(arn, 1))


async def test_stream_waits_out_queue_full_nacks(local_ivs: LocalIvs) -> None:
    """Past the connection's in-flight bound, sends wait retry_after_ms and then succeed."""
    arn = new_channel(local_ivs, "inflight")
    async with (
        running_gateway(local_ivs, ws_max_in_flight=2) as gw,
        GatewayClient(gw.url, max_retries=20) as client,
        client.stream() as stream,
    ):
        results = await asyncio.gather(
            *(stream.send(cue(arn, n, data={"s": BIG})) for n in range(5))
        )
        assert [r.status for r in results] == ["queued"] * 5
        text = await gw.metrics()
        assert metric(text, 'metadata_gateway_cues_rejected_total{reason="queue_full"}') >= 1
        await asyncio.wait_for(stream.wait_settled(), 10)
        assert sorted(payload_ids(local_ivs, arn)) == sorted(r.id for r in results)


async def test_duplicate_of_a_delivered_cue_gets_a_receipt_from_the_client(
    local_ivs: LocalIvs,
) -> None:
    """A cue the gateway already delivered is acked duplicate and receipted sent with at=None."""
    arn = new_channel(local_ivs, "synth")
    async with running_gateway(local_ivs) as gw, GatewayClient(gw.url) as client:
        await client.send(cue(arn, 0, id="once"))
        await gw.wait_for(lambda: payload_ids(local_ivs, arn) == ["once"])
        async with client.stream() as stream:
            result = await stream.send(cue(arn, 0, id="once"))
            assert (result.status, result.delivered) == ("duplicate", True)
            receipt = await anext(stream.receipts())
        assert receipt == Receipt("sent", arn, ("once",), at=None)
        assert payload_ids(local_ivs, arn) == ["once"]


async def test_stream_survives_a_gateway_restart_without_duplicates_or_losses(
    local_ivs: LocalIvs,
) -> None:
    """100 cues over ~2 s while the gateway restarts: each reaches IVS exactly once, receipted."""
    arns = [new_channel(local_ivs, "restart-a"), new_channel(local_ivs, "restart-b")]
    port = free_port()
    ids = [f"r{n:03d}" for n in range(100)]
    # 3 cues of this size fill a call: 30 cues/s on two channels, 50/s offered, so the old
    # gateway has a backlog to drain (and receipt) while new cues are refused shutting_down.
    medium = "m" * 250
    receipts: list[Receipt] = []
    backlog: list[int] = []
    async with gateways(local_ivs, port) as running:
        async with GatewayClient(f"http://127.0.0.1:{port}") as client, client.stream() as stream:
            collector = asyncio.create_task(collect(stream, receipts))

            async def restart() -> None:
                backlog.append(running[-1].app[GATEWAY].total_cues)
                await running[-1].stop()
                await asyncio.sleep(0.2)  # nothing listens: reconnects are refused meanwhile
                running.append(await PortGateway.start(local_ivs, port))

            async with asyncio.TaskGroup() as group:
                sends = []
                for n, cue_id in enumerate(ids):
                    if n == 50:
                        group.create_task(restart())
                    data = {"n": n, "s": medium}
                    sends.append(
                        group.create_task(stream.send(cue(arns[n % 2], n, id=cue_id, data=data)))
                    )
                    await asyncio.sleep(0.02)
            assert {s.result().id for s in sends} == set(ids)
            await asyncio.wait_for(stream.wait_settled(), 10)
            assert stream.reconnects == 1
        await collector
    assert backlog[0] > 0  # the old gateway drained, and refused cues meanwhile:
    refused = running[0].app[METRICS].render().decode()
    assert metric(refused, 'metadata_gateway_cues_rejected_total{reason="shutting_down"}') >= 1
    delivered = Counter(payload_ids(local_ivs, arns[0]) + payload_ids(local_ivs, arns[1]))
    assert set(delivered) == set(ids)
    assert set(delivered.values()) == {1}
    receipted = Counter(i for r in receipts if r.op == "sent" for i in r.ids)
    assert set(receipted) == set(ids)
    assert set(receipted.values()) == {1}


async def test_acked_cues_the_old_gateway_never_sent_go_to_its_replacement(
    local_ivs: LocalIvs,
) -> None:
    """Cues acked but still queued when the gateway stops are re-sent, once, to the next one."""
    arn = new_channel(local_ivs, "handover", live=False)  # the first gateway cannot send them
    port = free_port()
    receipts: list[Receipt] = []
    async with gateways(local_ivs, port) as running:
        async with GatewayClient(f"http://127.0.0.1:{port}") as client, client.stream() as stream:
            collector = asyncio.create_task(collect(stream, receipts))
            acked = await stream.send_many([cue(arn, n) for n in range(5)])
            assert [r.status for r in acked] == ["queued"] * 5
            await running[-1].stop(drain=0.1)  # gives up on them: dropped with the process
            running.append(await PortGateway.start(local_ivs, port))
            local_ivs.state.start_stream(arn)
            await asyncio.wait_for(stream.wait_settled(), 10)
            assert (stream.reconnects, stream.resent) == (1, 5)
        await collector
    assert sorted(payload_ids(local_ivs, arn)) == sorted(r.id for r in acked)
    assert sorted(i for r in receipts for i in r.ids) == sorted(r.id for r in acked)
