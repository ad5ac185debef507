"""A scripted show end to end, over HTTP and WebSocket, checked at the local IVS."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
from gateway_harness import new_channel, running_gateway

from metadata_gateway.local_ivs import LocalIvs

CALL_INTERVAL_S = 0.21  # one call interval at 5 calls/s, plus 10 ms


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


async def test_scripted_show_arrives_on_time_in_order_with_state_repeats(
    local_ivs: LocalIvs,
) -> None:
    """Question at T, reveal at T+5 s, a poll every 300 ms and a repeating state cue."""
    arn = new_channel(local_ivs, "show")
    async with running_gateway(local_ivs, channels={"show": arn}) as gw:
        start = time.time() + 0.5
        question = {
            "channel": "show",
            "type": "quiz",
            "id": "q5",
            "data": {"question_id": "q5", "text": "Capital of Peru?"},
            "not_before": rfc3339(start),
            "priority": "high",
        }
        reveal = {
            "channel": "show",
            "type": "quiz",
            "id": "q5-reveal",
            "data": {"question_id": "q5", "answer": "Lima"},
            "not_before": round((start + 5) * 1000),
        }
        state = {
            "channel": "show",
            "type": "state",
            "key": "quiz:current",
            "id": "state-q5",
            "data": {"question_id": "q5"},
            "repeat_ms": 1000,
        }
        status, body, _ = await gw.post({"cues": [question, reveal]})
        assert status == 202, body
        _, detail = await gw.get("/v1/channels/show")
        assert [c["id"] for c in detail["scheduled_cues"]] == ["q5", "q5-reveal"]
        async with gw.http.ws_connect(f"{gw.url}/v1/ws") as ws:
            await ws.send_str(orjson.dumps({"op": "cue", "ref": "s", **state}).decode())
            for tick in range(8):  # a poll tally every 300 ms for 2.4 s
                poll = {"channel": "show", "type": "poll", "data": {"poll_id": "p", "n": tick}}
                await ws.send_str(orjson.dumps({"op": "cue", "ref": tick, **poll}).decode())
                await asyncio.sleep(0.3)
            await asyncio.sleep(max(0.0, start + 5.4 - time.time()))
        arrivals: dict[str, list[float]] = {}
        order: list[str] = []
        for event in local_ivs.state.events_of(arn):
            for item in orjson.loads(event.metadata)["c"]:
                arrivals.setdefault(item["i"], []).append(event.time)
                order.append(item["i"])
        [asked] = arrivals["q5"]
        [revealed] = arrivals["q5-reveal"]
        assert start <= asked <= start + CALL_INTERVAL_S
        assert start + 5 <= revealed <= start + 5 + CALL_INTERVAL_S
        assert order.index("q5") < order.index("q5-reveal")
        assert len(arrivals["state-q5"]) >= 4  # sent, then repeated about every second
        polls = [i for i in order if i not in ("q5", "q5-reveal", "state-q5")]
        assert 1 <= len(polls) <= 8
