"""GetStreamSession and ListStreamSessions through a real aiobotocore client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from metadata_gateway.local_ivs import LocalIvs

MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist"


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


async def _broadcast(ivs_client: Any, local_ivs: LocalIvs, arn: str, times: int) -> list[str]:
    """Start and stop the channel's stream `times` times; return the stream ids, oldest first."""
    ids = []
    for _ in range(times):
        ids.append(local_ivs.state.start_stream(arn)["stream"]["streamId"])
        await ivs_client.stop_stream(channelArn=arn)
    return ids


async def test_a_live_session_has_no_end_and_its_start_events(
    ivs_client: Any, live_channel: str
) -> None:
    """The latest session of a live channel: its stream id, startTime, no endTime, the channel
    as it went live, and Stream Start before Session Created in newest-first order."""
    stream = (await ivs_client.get_stream(channelArn=live_channel))["stream"]
    session = (await ivs_client.get_stream_session(channelArn=live_channel))["streamSession"]
    assert session["streamId"] == stream["streamId"]
    assert session["startTime"] == stream["startTime"]
    assert isinstance(session["startTime"], datetime)
    assert "endTime" not in session
    assert session["channel"]["arn"] == live_channel
    assert session["channel"]["name"] == "live"
    names = [event["name"] for event in session["truncatedEvents"]]
    assert names == ["Stream Start", "Session Created"]
    assert {event["type"] for event in session["truncatedEvents"]} == {"IVS Stream State Change"}


async def test_an_ended_session_has_its_end_time_and_end_events(
    ivs_client: Any, live_channel: str
) -> None:
    """After StopStream the session has endTime and Session Ended, Stream End on top."""
    await ivs_client.stop_stream(channelArn=live_channel)
    session = (await ivs_client.get_stream_session(channelArn=live_channel))["streamSession"]
    assert session["endTime"] >= session["startTime"]
    names = [event["name"] for event in session["truncatedEvents"]]
    assert names == ["Session Ended", "Stream End", "Stream Start", "Session Created"]
    by_id = await ivs_client.get_stream_session(
        channelArn=live_channel, streamId=session["streamId"]
    )
    assert by_id["streamSession"] == session


async def test_list_stream_sessions_pages_newest_first(
    ivs_client: Any, local_ivs: LocalIvs
) -> None:
    """Five broadcasts list newest first, two per page, every one exactly once, ended ones with
    endTime; the live one has none."""
    arn = local_ivs.state.create_channel(name="show")["channel"]["arn"]
    ids = await _broadcast(ivs_client, local_ivs, arn, 4)
    ids.append(local_ivs.state.start_stream(arn)["stream"]["streamId"])
    seen: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"channelArn": arn, "maxResults": 2}
        if token:
            kwargs["nextToken"] = token
        page = await ivs_client.list_stream_sessions(**kwargs)
        assert len(page["streamSessions"]) <= 2
        seen += page["streamSessions"]
        token = page.get("nextToken")
        if not token:
            break
    assert [s["streamId"] for s in seen] == ids[::-1]
    assert "endTime" not in seen[0]
    assert all("endTime" in s and s["hasErrorEvent"] is False for s in seen[1:])
    default = await ivs_client.list_stream_sessions(channelArn=arn)
    assert len(default["streamSessions"]) == 5
    assert "nextToken" not in default


async def test_session_errors_are_ivs_errors(ivs_client: Any, local_ivs: LocalIvs) -> None:
    """Unknown channel, or one that never went live: not found; a stream id off its pattern,
    maxResults over 100 or a token that is not ours: ValidationException."""
    arn = local_ivs.state.create_channel(name="quiet")["channel"]["arn"]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("get_stream_session", {"channelArn": MISSING_CHANNEL}, "ResourceNotFoundException"),
        ("list_stream_sessions", {"channelArn": MISSING_CHANNEL}, "ResourceNotFoundException"),
        ("get_stream_session", {"channelArn": arn}, "ResourceNotFoundException"),
        (
            "get_stream_session",
            {"channelArn": arn, "streamId": "st-" + "a" * 23},
            "ResourceNotFoundException",
        ),
        (
            "get_stream_session",
            {"channelArn": arn, "streamId": "xx-" + "a" * 23},
            "ValidationException",
        ),
        ("list_stream_sessions", {"channelArn": arn, "maxResults": 101}, "ValidationException"),
        ("list_stream_sessions", {"channelArn": arn, "nextToken": "bad!"}, "ValidationException"),
    ]
    for operation, kwargs, code in cases:
        with pytest.raises(ClientError) as refused:
            await getattr(ivs_client, operation)(**kwargs)
        assert _code(refused.value) == code, (operation, kwargs)
    empty = await ivs_client.list_stream_sessions(channelArn=arn)
    assert empty["streamSessions"] == []


async def test_the_admin_start_makes_a_session(
    ivs_client: Any, local_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """POST /_local/streams starts a session; starting it again while live does not make
    another one."""
    arn = local_ivs.state.create_channel(name="admin")["channel"]["arn"]
    for _ in range(2):
        async with http.post(f"{local_ivs.url}/_local/streams", json={"channelArn": arn}) as r:
            assert r.status == 200
    sessions = (await ivs_client.list_stream_sessions(channelArn=arn))["streamSessions"]
    assert len(sessions) == 1
