"""Injected PutMetadata faults: exact dice, error answers, latency and dropped connections."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from metadata_gateway.local_ivs import Fault, LocalIvs
from metadata_gateway.local_ivs.errors import MODELED_ERRORS
from metadata_gateway.local_ivs.faults import FaultDecision, FaultInjector, FaultSpecError

OTHER_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/other"


def test_injector_draws_from_its_generator_exactly() -> None:
    """With a seeded generator, which calls fail is exactly what that generator's draws say."""
    injector = FaultInjector(random.Random(7))
    injector.set(Fault(error="InternalServerException", rate=0.3))
    draws = random.Random(7)
    expected = [draws.random() < 0.3 for _ in range(50)]
    got = [injector.decide("any") for _ in range(50)]
    assert [decision is not None and decision.error is not None for decision in got] == expected
    assert 0 < sum(expected) < 50


def test_injector_prefers_the_channel_fault_over_the_global_one() -> None:
    """A channel's own fault replaces the account-wide fault for that channel only."""
    injector = FaultInjector(random.Random(1))
    injector.set(Fault(error="ThrottlingException", rate=1.0))
    injector.set(Fault(latency_ms=50, channel_arn=OTHER_CHANNEL))
    assert injector.decide(OTHER_CHANNEL) == FaultDecision(0.05, disconnect=False, error=None)
    assert injector.decide("elsewhere") == FaultDecision(0.0, False, "ThrottlingException")
    injector.clear()
    assert injector.decide("elsewhere") is None


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"error": "NoSuchError", "rate": 1.0}, "error must be one of"),
        ({"error": "ThrottlingException", "rate": 1.5}, "rate must be between 0 and 1"),
        ({"rate": 0.5}, "needs an error name"),
        ({"disconnect_rate": -0.1}, "disconnect_rate"),
        ({"latency_ms": 10**9}, "latency_ms"),
        ({"latency_ms": True}, "latency_ms must be a number"),
        ({"channelArn": "nope"}, "channelArn"),
        ({"surprise": 1}, "unknown fields: surprise"),
        ([], "JSON object"),
    ],
)
def test_fault_descriptions_are_validated(body: object, complaint: str) -> None:
    """Each malformed fault description is refused with a message naming the problem."""
    with pytest.raises(FaultSpecError, match=complaint):
        Fault.from_json(body)


def test_naming_an_error_without_a_rate_fails_every_call() -> None:
    """`{"error": NAME}` alone means rate 1.0; without an error the rate defaults to 0."""
    assert Fault.from_json({"error": "ThrottlingException"}).rate == 1.0
    assert Fault.from_json({"latency_ms": 5}).rate == 0.0


async def test_injected_error_reaches_botocore_as_the_modeled_exception(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """rate 1.0 of InternalServerException: botocore raises it (500) and nothing is recorded."""
    local_ivs.state.faults.set(Fault(error="InternalServerException", rate=1.0))
    with pytest.raises(ivs_client.exceptions.InternalServerException) as raised:
        await ivs_client.put_metadata(channelArn=live_channel, metadata="x")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert len(local_ivs.state.events) == 0
    assert local_ivs.state.stats()["PutMetadata"] == {"accepted": 0, "InternalServerException": 1}


@pytest.mark.parametrize("name", sorted(MODELED_ERRORS))
async def test_every_error_name_answers_with_its_status(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, live_channel: str, name: str
) -> None:
    """Each injectable error answers its model status, x-amzn-ErrorType and exceptionMessage."""
    local_ivs.state.faults.set(Fault(error=name, rate=1.0))
    body = {"channelArn": live_channel, "metadata": "x"}
    async with http.post(f"{local_ivs.url}/PutMetadata", json=body) as response:
        assert response.status == MODELED_ERRORS[name]
        assert response.headers["x-amzn-ErrorType"] == name
        assert "exceptionMessage" in await response.json()


async def test_injected_fault_does_not_spend_the_rate_quota(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """Faulted calls happen before the limit check, so five real calls still fit afterwards."""
    local_ivs.state.faults.set(Fault(error="ThrottlingException", rate=1.0))
    for _ in range(5):
        with pytest.raises(ivs_client.exceptions.ThrottlingException):
            await ivs_client.put_metadata(channelArn=live_channel, metadata="x")
    local_ivs.state.faults.clear()
    for _ in range(5):
        await ivs_client.put_metadata(channelArn=live_channel, metadata="x")
    assert local_ivs.state.stats()["PutMetadata"] == {"accepted": 5, "ThrottlingException": 5}


async def test_channel_scoped_fault_spares_other_channels(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """A fault on one channel leaves calls on other channels alone."""
    other = local_ivs.state.create_channel(name="other")["channel"]["arn"]
    local_ivs.state.start_stream(other)
    local_ivs.state.faults.set(Fault(error="ServiceUnavailable", rate=1.0, channel_arn=other))
    await ivs_client.put_metadata(channelArn=live_channel, metadata="fine")
    with pytest.raises(ClientError) as raised:
        await ivs_client.put_metadata(channelArn=other, metadata="x")
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"


async def test_disconnect_fault_drops_the_connection(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """disconnect_rate 1.0 closes the connection unanswered: botocore's ConnectionClosedError."""
    local_ivs.state.faults.set(Fault(disconnect_rate=1.0))
    with pytest.raises(ConnectionClosedError):
        await ivs_client.put_metadata(channelArn=live_channel, metadata="x")
    local_ivs.state.faults.clear()
    await ivs_client.put_metadata(channelArn=live_channel, metadata="after")
    assert [event.metadata for event in local_ivs.state.events] == ["after"]
    assert local_ivs.state.stats()["PutMetadata"] == {"accepted": 1, "Disconnected": 1}


async def test_latency_fault_delays_the_answer(
    ivs_client: Any, local_ivs: LocalIvs, live_channel: str
) -> None:
    """latency_ms 200 delays an otherwise normal answer by at least 0.2 s."""
    local_ivs.state.faults.set(Fault(latency_ms=200))
    started = time.perf_counter()
    await ivs_client.put_metadata(channelArn=live_channel, metadata="slow")
    assert time.perf_counter() - started >= 0.2
    assert len(local_ivs.state.events) == 1


async def test_faults_through_the_admin_api(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, boto3_client: Any, live_channel: str
) -> None:
    """POST sets a fault, GET lists it, a bad one is 400, DELETE clears; boto3 sees the error."""
    url = f"{local_ivs.url}/_local/faults"
    async with http.post(url, json={"error": "Nope", "rate": 1.0}) as response:
        assert response.status == 400
        assert "error must be one of" in (await response.json())["message"]
    fault = {"error": "AccessDeniedException", "rate": 1.0, "channelArn": live_channel}
    async with http.post(url, json=fault) as response:
        assert response.status == 200
    async with http.get(url) as response:
        (listed,) = (await response.json())["faults"]
        assert listed["error"] == "AccessDeniedException"
    with pytest.raises(boto3_client.exceptions.AccessDeniedException):
        await asyncio.to_thread(boto3_client.put_metadata, channelArn=live_channel, metadata="x")
    async with http.delete(url) as response:
        assert response.status == 204
    await asyncio.to_thread(boto3_client.put_metadata, channelArn=live_channel, metadata="x")
