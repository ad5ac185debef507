"""The WebSocket API over real sockets: acks, receipts, nacks, flow control, slow readers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
from gateway_harness import RunningGateway, new_channel, running_gateway

from metadata_gateway.local_ivs import LocalIvs


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> dict[str, Any]:
    message = await ws.receive(timeout=within)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    result: dict[str, Any] = orjson.loads(message.data)
    return result


async def connect(gw: RunningGateway) -> aiohttp.ClientWebSocketResponse:
    # A short close timeout: a peer that was cut off answers no close frame.
    return await gw.http.ws_connect(
        f"{gw.url}/v1/ws", timeout=aiohttp.ClientWSTimeout(ws_close=1.0)
    )


async def test_200_cues_all_acked_then_receipted(local_ivs: LocalIvs) -> None:
    """200 cues over one connection: every cue acked, then receipted sent, ack first."""
    arn = new_channel(local_ivs, "ws200")
    async with running_gateway(local_ivs) as gw, await connect(gw) as ws:
        for ref in range(2):
            cues = [{"channel": arn, "type": "custom", "data": {"n": n}} for n in range(100)]
            await ws.send_str(orjson.dumps({"op": "cues", "ref": ref, "cues": cues}).decode())
        acked: list[str] = []
        sent: list[str] = []
        while len(sent) < 200:
            message = await receive(ws)
            if message["op"] == "ack":
                assert not sent or len(acked) == 200 or message["ref"] == 1
                acked += [c["id"] for c in message["cues"]]
            else:
                assert message["op"] == "sent", message
                assert set(message["ids"]) <= set(acked)  # an ack comes before its receipts
                assert message["channel"] == arn
                assert message["at"] > 0
                sent += message["ids"]
        assert sent == acked
        assert len(set(sent)) == 200


async def test_bad_frames_get_nacks_in_order_and_the_connection_stays_open(
    local_ivs: LocalIvs,
) -> None:
    """Mixed frames are answered in order; a bad frame never closes the connection."""
    arn = new_channel(local_ivs, "wsmix")
    good = {"op": "cue", "channel": arn, "type": "quiz", "data": {"question_id": 1}}
    frames = [
        orjson.dumps({**good, "ref": "a"}).decode(),
        "{not json",
        orjson.dumps({**good, "ref": "c", "type": "nope"}).decode(),
        orjson.dumps({"op": "dance", "ref": "d"}).decode(),
        orjson.dumps({**good, "ref": "e", "channel": "nobody"}).decode(),
        orjson.dumps({**good, "ref": "f", "data": {"question_id": "x" * 70_000}}).decode(),
        orjson.dumps({**good, "ref": "g"}).decode(),
    ]
    async with running_gateway(local_ivs) as gw, await connect(gw) as ws:
        for frame in frames:
            await ws.send_str(frame)
        answers: list[Any] = []
        while len(answers) < len(frames):
            message = await receive(ws)
            if message["op"] in ("ack", "nack"):
                answers.append(
                    (message["op"], message["ref"], message.get("error", {}).get("code"))
                )
        assert answers == [
            ("ack", "a", None),
            ("nack", None, "invalid_json"),
            ("nack", "c", "invalid_cue"),
            ("nack", "d", "invalid_op"),
            ("nack", "e", "unknown_channel"),
            ("nack", "f", "cue_too_large"),
            ("ack", "g", None),
        ]
        assert not ws.closed


async def test_in_flight_bound_answers_queue_full(local_ivs: LocalIvs) -> None:
    """Past the connection's in-flight bound, frames get queue_full with retry_after_ms."""
    arn = new_channel(local_ivs, "wsflood", live=False)  # nothing settles while offline
    async with running_gateway(local_ivs, ws_max_in_flight=50) as gw, await connect(gw) as ws:
        cues = [{"channel": arn, "type": "custom", "data": {"n": n}} for n in range(40)]
        await ws.send_str(orjson.dumps({"op": "cues", "ref": 1, "cues": cues}).decode())
        await ws.send_str(orjson.dumps({"op": "cues", "ref": 2, "cues": cues[:20]}).decode())
        first, second = await receive(ws), await receive(ws)
        assert first["op"] == "ack"
        assert second["op"] == "nack"
        assert second["error"]["code"] == "queue_full"
        assert second["error"]["retry_after_ms"] > 0


async def test_oversized_frames_nacked_or_closed(local_ivs: LocalIvs) -> None:
    """A frame over the limit gets body_too_large; one far beyond closes with 1009."""
    async with running_gateway(local_ivs, max_body_bytes=2048) as gw, await connect(gw) as ws:
        await ws.send_str("x" * 3000)
        nack = await receive(ws)
        assert (nack["op"], nack["error"]["code"]) == ("nack", "body_too_large")
        await ws.send_str("x" * 20000)
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1009


async def test_duplicate_of_pending_cue_also_gets_the_receipt(local_ivs: LocalIvs) -> None:
    """A duplicate of a waiting cue is acked delivered=false and receipted when it is sent."""
    arn = new_channel(local_ivs, "wsdup", live=False)
    cue = {"op": "cue", "channel": arn, "type": "quiz", "data": {"question_id": 9}, "id": "q9"}
    async with running_gateway(local_ivs) as gw, await connect(gw) as ws:
        await ws.send_str(orjson.dumps({**cue, "ref": 1}).decode())
        await ws.send_str(orjson.dumps({**cue, "ref": 2}).decode())
        first, second = await receive(ws), await receive(ws)
        assert first["cues"][0]["status"] == "queued"
        assert second["cues"][0] | {} == {
            "id": "q9",
            "channel": arn,
            "status": "duplicate",
            "delivered": False,
        }
        local_ivs.state.start_stream(arn)
        receipt = await receive(ws)
        assert (receipt["op"], receipt["ids"]) == ("sent", ["q9"])


async def test_non_reading_client_is_disconnected_others_keep_receipts(
    local_ivs: LocalIvs,
) -> None:
    """A client that stops reading is closed; a second client on the channel is unaffected."""
    arn = new_channel(local_ivs, "wsslow")
    async with (
        running_gateway(local_ivs, ws_outbound_max_bytes=32 * 1024) as gw,
        await connect(gw) as slow,
        await connect(gw) as good,
    ):
        transport = slow._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        transport.pause_reading()
        for ref in range(12):
            # One collapse key: the flood of acks is large, the channel's queue stays short.
            cues = [
                {
                    "channel": arn,
                    "type": "custom",
                    "data": {},
                    "key": "k",
                    "id": f"{ref}-{n}-{'p' * 50}",
                }
                for n in range(80)
            ]
            await slow.send_str(orjson.dumps({"op": "cues", "ref": ref, "cues": cues}).decode())
        await gw.wait_for(lambda: 'reason="slow_consumer"' in gw.app_metrics_text(), within=10)
        await good.send_str(
            orjson.dumps(
                {"op": "cue", "ref": 1, "channel": arn, "type": "custom", "data": {}}
            ).decode()
        )
        ack = await receive(good)
        receipt = await receive(good, within=10)
        assert receipt["op"] == "sent"
        assert receipt["ids"] == [ack["cues"][0]["id"]]


async def test_shutdown_tells_why_then_closes_sessions_with_going_away(local_ivs: LocalIvs) -> None:
    """Stopping the app drops held cues with a receipt saying so, then closes with 1001."""
    arn = new_channel(local_ivs, "wsbye", live=False)
    async with running_gateway(local_ivs) as gw, await connect(gw) as ws:
        cue = {"op": "cue", "ref": 1, "channel": arn, "type": "quiz", "data": {"question_id": 1}}
        await ws.send_str(orjson.dumps(cue).decode())
        ack = await receive(ws)
        stopping = asyncio.create_task(gw.runner.cleanup())
        dropped = await receive(ws)
        assert (dropped["op"], dropped["reason"]) == ("dropped", "shutdown")
        assert dropped["ids"] == [ack["cues"][0]["id"]]
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1001
        async with asyncio.timeout(5):  # no wait for the WebSocket handler to end by itself
            await stopping
