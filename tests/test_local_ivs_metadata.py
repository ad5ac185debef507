"""PutMetadata: its checks in IVS's order, the rate quotas, and the recorded events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError
from conftest import FakeClock

from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings, LocalIvsState, MetadataEvent

MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist"


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


async def _put(client: Any, arn: str, metadata: str) -> str:
    """Return `accepted` or the error code of one PutMetadata call."""
    try:
        await client.put_metadata(channelArn=arn, metadata=metadata)
    except ClientError as error:
        return _code(error)
    return "accepted"


async def test_put_metadata_answers_204_and_records_the_event(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """An accepted call answers 204 and is recorded with its time, channel and payload."""
    answer = await ivs_client.put_metadata(channelArn=live_channel, metadata='{"q": 1}')
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    (event,) = local_ivs.state.events
    assert (event.channel_arn, event.metadata) == (live_channel, '{"q": 1}')
    assert local_ivs.state.stats()["PutMetadata"] == {"accepted": 1}


async def test_put_metadata_accepts_exactly_1024_bytes(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """1024 bytes of UTF-8 is the largest payload IVS takes."""
    await ivs_client.put_metadata(channelArn=live_channel, metadata="é" * 512)
    await ivs_client.put_metadata(channelArn=live_channel, metadata="x" * 1024)
    assert len(local_ivs.state.events) == 2


@pytest.mark.parametrize(
    "metadata",
    ["x" * 1025, "é" * 513, "€" * 342],
    ids=["1025-ascii", "513-two-byte-chars", "342-three-byte-chars"],
)
async def test_put_metadata_refuses_more_than_1024_utf8_bytes(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str, metadata: str
) -> None:
    """The limit is bytes, not characters: under 1024 characters can still be too large."""
    with pytest.raises(ivs_client.exceptions.ValidationException) as raised:
        await ivs_client.put_metadata(channelArn=live_channel, metadata=metadata)
    message = raised.value.response["exceptionMessage"]
    assert "1024" in message
    assert metadata[:20] not in message  # the payload is sensitive: never echoed
    assert len(local_ivs.state.events) == 0


async def test_put_metadata_refuses_an_empty_payload_on_the_wire(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, live_channel: str
) -> None:
    """An empty payload (which botocore refuses before sending) is ValidationException too."""
    body = {"channelArn": live_channel, "metadata": ""}
    async with http.post(f"{local_ivs.url}/PutMetadata", json=body) as response:
        assert response.status == 400
        assert response.headers["x-amzn-ErrorType"] == "ValidationException"


async def test_put_metadata_checks_size_then_channel_then_live(
    ivs_client: Any, local_ivs: LocalIvs
) -> None:
    """Too large beats unknown channel, which beats offline; offline is ChannelNotBroadcasting."""
    offline = local_ivs.state.create_channel()["channel"]["arn"]
    assert await _put(ivs_client, MISSING_CHANNEL, "x" * 2000) == "ValidationException"
    assert await _put(ivs_client, MISSING_CHANNEL, "x") == "ResourceNotFoundException"
    assert await _put(ivs_client, offline, "x" * 2000) == "ValidationException"
    assert await _put(ivs_client, offline, "x") == "ChannelNotBroadcasting"
    assert local_ivs.state.stats()["PutMetadata"] == {
        "accepted": 0,
        "ValidationException": 2,
        "ResourceNotFoundException": 1,
        "ChannelNotBroadcasting": 1,
    }


async def test_channel_quota_with_a_fake_clock_through_the_client(
    make_local_ivs: Callable[..., Awaitable[LocalIvs]],
    make_ivs_client: Callable[[str], Awaitable[Any]],
    fake_clock: FakeClock,
) -> None:
    """Five calls at 0.0..0.4 pass, a sixth at 0.999 is throttled, one at 1.0001 passes."""
    ivs = await make_local_ivs(clock=fake_clock)
    client = await make_ivs_client(ivs.url)
    arn = ivs.state.create_channel()["channel"]["arn"]
    ivs.state.start_stream(arn)
    outcomes = []
    for now in (0.0, 0.1, 0.2, 0.3, 0.4, 0.999, 1.0001):
        fake_clock.now = now
        outcomes.append(await _put(client, arn, f"at {now}"))
    assert outcomes == ["accepted"] * 5 + ["ThrottlingException", "accepted"]
    assert [event.metadata for event in ivs.state.events][-1] == "at 1.0001"
    assert ivs.state.stats()["PutMetadata"] == {"accepted": 6, "ThrottlingException": 1}


async def test_account_quota_with_a_fake_clock_across_channels(
    make_local_ivs: Callable[..., Awaitable[LocalIvs]],
    make_ivs_client: Callable[[str], Awaitable[Any]],
    fake_clock: FakeClock,
) -> None:
    """With account_rate 4, calls spread over three channels share one budget per second."""
    ivs = await make_local_ivs(clock=fake_clock, account_rate=4)
    client = await make_ivs_client(ivs.url)
    arns = [ivs.state.create_channel(name=f"a{i}")["channel"]["arn"] for i in range(3)]
    for arn in arns:
        ivs.state.start_stream(arn)
    outcomes = []
    for step in range(6):
        fake_clock.now = 0.1 * step
        outcomes.append(await _put(client, arns[step % 3], "x"))
    assert outcomes == ["accepted"] * 4 + ["ThrottlingException"] * 2
    fake_clock.now = 1.05  # the calls at 0.0 and the throttled ones no longer count
    assert await _put(client, arns[1], "x") == "accepted"
    assert await _put(client, arns[2], "x") == "ThrottlingException"


async def test_rapid_real_time_calls_are_throttled_past_five(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """Eight calls fired at once on one channel: exactly five accepted, three throttled."""
    outcomes = await asyncio.gather(*(_put(ivs_client, live_channel, str(i)) for i in range(8)))
    assert sorted(outcomes) == ["ThrottlingException"] * 3 + ["accepted"] * 5
    assert len(local_ivs.state.events) == 5
    throttled = local_ivs.state.stats()["PutMetadata"]["ThrottlingException"]
    assert throttled == 3


async def test_throttling_answers_429_through_boto3(
    boto3_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """boto3 raises ThrottlingException (HTTP 429) once the channel quota is spent."""
    for i in range(5):
        await asyncio.to_thread(boto3_client.put_metadata, channelArn=live_channel, metadata=str(i))
    with pytest.raises(boto3_client.exceptions.ThrottlingException) as raised:
        await asyncio.to_thread(boto3_client.put_metadata, channelArn=live_channel, metadata="6")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(boto3_client.exceptions.ChannelNotBroadcasting):
        await asyncio.to_thread(
            boto3_client.put_metadata,
            channelArn=local_ivs.state.create_channel()["channel"]["arn"],
            metadata="x",
        )


def test_events_are_bounded_oldest_first_out() -> None:
    """Past max_events the oldest accepted payloads are dropped."""
    state = LocalIvsState(
        LocalIvsSettings(max_events=3, channel_rate=100),
        clock=lambda: 5.0,
        wall_clock=lambda: 1_700_000_000.0,
    )

    arn = state.create_channel()["channel"]["arn"]
    state.start_stream(arn)
    for i in range(5):
        state.put_metadata(arn, str(i))
    assert list(state.events) == [MetadataEvent(1_700_000_000.0, arn, str(i)) for i in (2, 3, 4)]
    assert state.events_of(arn) == list(state.events)
    state.clear_events()
    assert len(state.events) == 0
