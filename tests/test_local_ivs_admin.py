"""The `/_local/` admin API: streams, recorded metadata, stats and the live SSE viewer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings, LocalIvsState
from metadata_gateway.local_ivs.admin import sse_frame
from metadata_gateway.local_ivs.viewers import VIEWER_BUFFER, ViewerHub

MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist"


async def test_post_streams_makes_a_channel_live(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, ivs_client: Any
) -> None:
    """POST /_local/streams starts a stream that GetStream and ListStreams then show."""
    arn = local_ivs.state.create_channel()["channel"]["arn"]
    async with http.post(f"{local_ivs.url}/_local/streams", json={"channelArn": arn}) as response:
        assert response.status == 200
        stream = (await response.json())["stream"]
    assert (stream["state"], stream["health"]) == ("LIVE", "HEALTHY")
    assert (await ivs_client.get_stream(channelArn=arn))["stream"]["streamId"] == stream["streamId"]
    assert [s["channelArn"] for s in (await ivs_client.list_streams())["streams"]] == [arn]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"channelArn": MISSING_CHANNEL}, 404, "ResourceNotFoundException"),
        ({"channelArn": "not-an-arn"}, 400, "ValidationException"),
        ({"nothing": True}, 400, "BadRequest"),
        ({"channelArn": MISSING_CHANNEL, "health": 3}, 400, "BadRequest"),
    ],
)
async def test_post_streams_refuses_bad_requests(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, body: object, status: int, code: str
) -> None:
    """Unknown channels are 404 and malformed bodies 400, each with a JSON error code."""
    async with http.post(f"{local_ivs.url}/_local/streams", json=body) as response:
        assert response.status == status
        assert (await response.json())["error"] == code


async def test_post_streams_refuses_invalid_json(
    local_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """A body that is not JSON is 400 with a JSON error."""
    async with http.post(f"{local_ivs.url}/_local/streams", data=b"{nope") as response:
        assert response.status == 400
        assert (await response.json())["error"] == "BadRequest"


async def test_metadata_lists_filters_and_clears(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, ivs_client: Any, live_channel: str
) -> None:
    """GET /_local/metadata lists accepted events (optionally of one channel); DELETE clears."""
    other = local_ivs.state.create_channel()["channel"]["arn"]
    local_ivs.state.start_stream(other)
    await ivs_client.put_metadata(channelArn=live_channel, metadata="one")
    await ivs_client.put_metadata(channelArn=other, metadata="two")
    url = f"{local_ivs.url}/_local/metadata"
    async with http.get(url) as response:
        events = (await response.json())["events"]
    assert [(e["channelArn"], e["metadata"]) for e in events] == [
        (live_channel, "one"),
        (other, "two"),
    ]
    assert abs(events[0]["time"] - time.time()) < 5
    async with http.get(url, params={"channelArn": other}) as response:
        assert [e["metadata"] for e in (await response.json())["events"]] == ["two"]
    async with http.delete(url) as response:
        assert response.status == 204
    async with http.get(url) as response:
        assert await response.json() == {"events": []}


async def test_stats_count_each_answer_by_name(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, ivs_client: Any, live_channel: str
) -> None:
    """GET /_local/stats counts accepted calls and each error name, per operation."""
    offline = local_ivs.state.create_channel()["channel"]["arn"]
    await ivs_client.put_metadata(channelArn=live_channel, metadata="x")
    with pytest.raises(ivs_client.exceptions.ChannelNotBroadcasting):
        await ivs_client.put_metadata(channelArn=offline, metadata="x")
    await ivs_client.get_channel(arn=offline)
    async with http.get(f"{local_ivs.url}/_local/stats") as response:
        stats = await response.json()
    assert stats == {
        "GetChannel": {"accepted": 1},
        "PutMetadata": {"accepted": 1, "ChannelNotBroadcasting": 1},
    }
    assert stats == local_ivs.state.stats()
    async with http.delete(f"{local_ivs.url}/_local/stats") as response:
        assert response.status == 204
    assert local_ivs.state.stats() == {}


async def _read_event(response: aiohttp.ClientResponse) -> list[str]:
    """Return the `data:` lines of the next event (comments skipped)."""
    data: list[str] = []
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line == "" and data:
            return data


async def test_viewer_streams_accepted_metadata_as_sse(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, ivs_client: Any, live_channel: str
) -> None:
    """The viewer sends each accepted payload of its channel as `data:` lines, live."""
    url = f"{local_ivs.url}/_local/viewer"
    async with http.get(url, params={"channelArn": live_channel}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert (await response.content.readline()).startswith(b": following")
        await ivs_client.put_metadata(channelArn=live_channel, metadata='{"cue": 1}')
        await ivs_client.put_metadata(channelArn=live_channel, metadata="two\nlines")
        async with asyncio.timeout(5):
            assert await _read_event(response) == ['{"cue": 1}']
            assert await _read_event(response) == ["two", "lines"]


async def test_viewer_of_unknown_or_malformed_channel(
    local_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """The viewer answers 404 for an unknown channel and 400 for a malformed ARN."""
    url = f"{local_ivs.url}/_local/viewer"
    async with http.get(url, params={"channelArn": MISSING_CHANNEL}) as response:
        assert response.status == 404
    async with http.get(url) as response:
        assert response.status == 400


async def test_open_viewer_does_not_hold_up_shutdown(http: aiohttp.ClientSession) -> None:
    """Closing the server ends open SSE streams at once instead of waiting for them."""
    ivs = LocalIvs(LocalIvsSettings(port=0))
    await ivs.start()
    arn = ivs.state.create_channel()["channel"]["arn"]
    async with http.get(f"{ivs.url}/_local/viewer", params={"channelArn": arn}) as response:
        await response.content.readline()
        started = time.perf_counter()
        await ivs.close()
        assert time.perf_counter() - started < 1.0
        async with asyncio.timeout(2):
            assert await response.content.read() == b"\n"


def test_sse_frame_splits_every_kind_of_line_break() -> None:
    """CR, LF and CRLF all end SSE lines, so each becomes its own `data:` line."""
    assert sse_frame("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


async def test_idle_viewer_gets_keepalive_comments(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing to send, the viewer writes `: keepalive` so a vanished client is noticed."""
    monkeypatch.setattr("metadata_gateway.local_ivs.admin.KEEPALIVE_SECONDS", 0.05)
    arn = local_ivs.state.create_channel()["channel"]["arn"]
    url = f"{local_ivs.url}/_local/viewer"
    async with http.get(url, params={"channelArn": arn}) as response:
        await response.content.readline()
        await response.content.readline()
        async with asyncio.timeout(2):
            assert await response.content.readline() == b": keepalive\n"


async def test_slow_viewer_drops_events_past_its_buffer_then_ends() -> None:
    """A viewer that never reads keeps the first VIEWER_BUFFER events, counts the rest dropped."""
    state = LocalIvsState(LocalIvsSettings(channel_rate=10_000, account_rate=10_000))
    arn = state.create_channel()["channel"]["arn"]
    state.start_stream(arn)
    hub = ViewerHub(state)
    viewer = hub.open(arn)
    for i in range(VIEWER_BUFFER + 5):
        state.put_metadata(arn, str(i))
    assert viewer.dropped == 5
    hub.close_all()
    assert viewer.dropped == 6  # the oldest made room for the end marker
    received = [await viewer.next_event() for _ in range(VIEWER_BUFFER)]
    assert [event.metadata for event in received[:-1] if event] == [
        str(i) for i in range(1, VIEWER_BUFFER)
    ]
    assert received[-1] is None
    assert await viewer.next_event() is None
    hub.release(viewer)
    assert len(hub) == 0
