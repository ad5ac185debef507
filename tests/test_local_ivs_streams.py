"""Live stream operations (GetStream, ListStreams, StopStream) and simulated stream starts."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from metadata_gateway.local_ivs import LocalIvs

MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist"


async def _channel(client: Any, name: str = "") -> str:
    return str((await client.create_channel(name=name))["channel"]["arn"])


async def test_get_stream_of_an_offline_channel_is_not_broadcasting(ivs_client: Any) -> None:
    """GetStream on a channel nobody streams to is ChannelNotBroadcasting (404)."""
    arn = await _channel(ivs_client)
    with pytest.raises(ivs_client.exceptions.ChannelNotBroadcasting) as raised:
        await ivs_client.get_stream(channelArn=arn)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_get_stream_of_an_unknown_channel_is_not_found(ivs_client: Any) -> None:
    """GetStream on an unknown channel is ResourceNotFoundException, not ChannelNotBroadcasting."""
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException):
        await ivs_client.get_stream(channelArn=MISSING_CHANNEL)


async def test_started_stream_is_live_and_healthy(ivs_client: Any, local_ivs: LocalIvs) -> None:
    """After a simulated start, GetStream answers LIVE, HEALTHY, a stream id and a start time."""
    arn = await _channel(ivs_client)
    before = datetime.now(tz=UTC)
    local_ivs.state.start_stream(arn)
    stream = (await ivs_client.get_stream(channelArn=arn))["stream"]
    assert (stream["channelArn"], stream["state"], stream["health"]) == (arn, "LIVE", "HEALTHY")
    assert re.fullmatch(r"st-[a-zA-Z0-9]{23}", stream["streamId"])
    assert stream["viewerCount"] == 0
    assert stream["playbackUrl"].startswith(f"{local_ivs.url}/_local/playback/")
    assert abs((stream["startTime"] - before).total_seconds()) < 5


async def test_list_streams_filters_by_health_and_pages(
    ivs_client: Any, local_ivs: LocalIvs
) -> None:
    """ListStreams lists live streams in start order, filters by health and pages by maxResults."""
    arns = [await _channel(ivs_client, f"s{i}") for i in range(4)]
    await _channel(ivs_client, "offline")
    for arn in arns:
        local_ivs.state.start_stream(arn)
    local_ivs.state.start_stream(arns[2], health="STARVING")

    everything = await ivs_client.list_streams()
    assert [stream["channelArn"] for stream in everything["streams"]] == arns
    starving = await ivs_client.list_streams(filterBy={"health": "STARVING"})
    assert [stream["channelArn"] for stream in starving["streams"]] == [arns[2]]
    first = await ivs_client.list_streams(maxResults=3)
    second = await ivs_client.list_streams(maxResults=3, nextToken=first["nextToken"])
    assert [s["channelArn"] for s in first["streams"] + second["streams"]] == arns
    assert "nextToken" not in second


async def test_list_streams_refuses_unknown_health(ivs_client: Any) -> None:
    """filterBy.health outside HEALTHY/STARVING/UNKNOWN is ValidationException."""
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.list_streams(filterBy={"health": "GREAT"})


async def test_stop_stream_ends_the_stream(ivs_client: Any, live_channel: str) -> None:
    """StopStream answers 200 {} and the channel is then offline."""
    answer = await ivs_client.stop_stream(channelArn=live_channel)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ivs_client.exceptions.ChannelNotBroadcasting):
        await ivs_client.get_stream(channelArn=live_channel)
    assert (await ivs_client.list_streams())["streams"] == []


async def test_stop_stream_of_an_offline_channel_is_not_broadcasting(ivs_client: Any) -> None:
    """StopStream on an offline channel is ChannelNotBroadcasting; on an unknown one not found."""
    arn = await _channel(ivs_client)
    with pytest.raises(ivs_client.exceptions.ChannelNotBroadcasting):
        await ivs_client.stop_stream(channelArn=arn)
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException):
        await ivs_client.stop_stream(channelArn=MISSING_CHANNEL)


async def test_stream_operations_through_boto3(boto3_client: Any, live_channel: str) -> None:
    """The blocking boto3 client drives GetStream, ListStreams and StopStream."""
    stream = (await asyncio.to_thread(boto3_client.get_stream, channelArn=live_channel))["stream"]
    assert stream["state"] == "LIVE"
    listed = await asyncio.to_thread(boto3_client.list_streams)
    assert [s["channelArn"] for s in listed["streams"]] == [live_channel]
    await asyncio.to_thread(boto3_client.stop_stream, channelArn=live_channel)
    with pytest.raises(boto3_client.exceptions.ChannelNotBroadcasting):
        await asyncio.to_thread(boto3_client.get_stream, channelArn=live_channel)
