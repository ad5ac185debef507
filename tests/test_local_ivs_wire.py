"""The rest-json wire contract: unknown operations, bodies, headers and request checks."""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from metadata_gateway.local_ivs import (
    LocalIvs,
    LocalIvsSettings,
    LocalIvsState,
    create_local_ivs_app,
)
from metadata_gateway.local_ivs.state import JsonObject


async def test_model_operation_not_implemented_is_unknown_operation(ivs_client: Any) -> None:
    """An operation of the model this local IVS lacks is UnknownOperationException (404)."""
    with pytest.raises(ClientError) as raised:
        await ivs_client.list_recording_configurations()
    error = raised.value.response
    assert error["Error"]["Code"] == "UnknownOperationException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "ListRecordingConfigurations" in error["Error"]["Message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/NoSuchThing"), ("GET", "/PutMetadata"), ("PUT", "/tags/x"), ("GET", "/a/b/c")],
)
async def test_unknown_paths_and_methods_are_unknown_operation(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """Any other path or method answers 404 UnknownOperationException with a JSON message."""
    async with http.request(method, local_ivs.url + path) as response:
        assert response.status == 404
        assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
        assert path in (await response.json())["exceptionMessage"]
    assert local_ivs.state.stats() == {
        "UnknownOperation": {"accepted": 0, "UnknownOperationException": 1}
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "'arn'"),
        (b'{"arn": 5}', "'arn'"),
    ],
)
async def test_malformed_bodies_are_validation_errors(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, body: bytes, needle: str
) -> None:
    """Bad JSON, a non-object, a missing or mistyped required member: ValidationException (400)."""
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{local_ivs.url}/GetChannel", data=body, headers=headers) as response:
        assert response.status == 400
        assert response.headers["x-amzn-ErrorType"] == "ValidationException"
        assert needle in (await response.json())["exceptionMessage"]


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("CreateChannel", {"authorized": "yes"}),
        ("CreateChannel", {"tags": {"a": 1}}),
        ("CreateChannel", {"multitrackInputConfiguration": {"policy": "SOMETIMES"}}),
        ("ListChannels", {"maxResults": "10"}),
        ("ListStreams", {"filterBy": "HEALTHY"}),
        ("BatchGetChannel", {"arns": []}),
        ("BatchGetStreamKey", {"arns": "x"}),
        ("PutMetadata", {"channelArn": "arn:aws:ivs:us-west-2:1:channel/x"}),
    ],
)
async def test_members_of_the_wrong_shape_are_refused(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, operation: str, body: dict[str, Any]
) -> None:
    """Mistyped members, bad enum values and empty batches are ValidationException."""
    async with http.post(f"{local_ivs.url}/{operation}", json=body) as response:
        assert response.status == 400
        assert response.headers["x-amzn-ErrorType"] == "ValidationException"


async def test_answers_carry_a_request_id_and_204s_have_no_body(
    local_ivs: LocalIvs, http: aiohttp.ClientSession, live_channel: str
) -> None:
    """Every answer has x-amzn-RequestId; PutMetadata's 204 has an empty body."""
    body = {"channelArn": live_channel, "metadata": "x"}
    async with http.post(f"{local_ivs.url}/PutMetadata", json=body) as response:
        assert response.status == 204
        assert response.headers["x-amzn-RequestId"]
        assert await response.read() == b""


async def test_any_credentials_are_accepted(
    local_ivs: LocalIvs, aio_session: Any, live_channel: str
) -> None:
    """SigV4 from any access key and region signs requests the local IVS accepts."""
    async with aio_session.create_client(
        "ivs",
        region_name="eu-west-1",
        endpoint_url=local_ivs.url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token="session-token",
    ) as client:
        await client.put_metadata(channelArn=live_channel, metadata="signed")


def test_seeded_states_hand_out_the_same_ids() -> None:
    """Two states with the same seed create the same channel ARNs and stream keys."""
    first = LocalIvsState(rng=random.Random(3)).create_channel(name="a")
    second = LocalIvsState(rng=random.Random(3)).create_channel(name="a")
    assert first == second


def test_settings_refuse_impossible_values() -> None:
    """Ports outside 0-65535, rates below 1 and malformed regions or accounts are refused."""
    for bad in (
        {"port": 70000},
        {"channel_rate": 0},
        {"account_rate": 0},
        {"max_events": 0},
        {"region": "US West"},
        {"account_id": "abc"},
    ):
        with pytest.raises(ValueError, match=r"must"):
            LocalIvsSettings(**bad)


async def test_url_is_only_known_while_started() -> None:
    """`url` names the bound port after start and raises before start and after close."""
    ivs = LocalIvs(LocalIvsSettings(port=0))
    with pytest.raises(RuntimeError, match="not started"):
        _ = ivs.url
    async with ivs:
        assert ivs.url.startswith("http://127.0.0.1:")
        assert not ivs.url.endswith(":0")
        assert ivs.state.base_url == ivs.url
    with pytest.raises(RuntimeError, match="not started"):
        _ = ivs.url


class _BrokenState(LocalIvsState):
    """A state whose GetChannel has a bug."""

    def get_channel(self, arn: str) -> JsonObject:
        raise RuntimeError("bug")


async def test_embedded_app_answers_a_bug_as_internal_server_exception(
    make_ivs_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """create_local_ivs_app runs in any runner; an unexpected error is a logged, modeled 500."""
    runner = web.AppRunner(create_local_ivs_app(_BrokenState()))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        client = await make_ivs_client(f"http://127.0.0.1:{runner.addresses[0][1]}")
        with pytest.raises(client.exceptions.InternalServerException):
            await client.get_channel(arn="arn:aws:ivs:us-west-2:123456789012:channel/abc")
        assert (await client.list_channels())["channels"] == []
    finally:
        await runner.cleanup()
    assert "failed answering GetChannel" in caplog.text
