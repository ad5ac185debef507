"""`--account KEY_ID=ACCOUNT`: the signing key decides the account a request acts in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from metadata_gateway.local_ivs import LocalIvs
from metadata_gateway.local_ivs.accounts import access_key_of, parse_account_option

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
DEFAULT = "123456789012"
Client = Callable[[str], Awaitable[Any]]


@pytest.fixture
async def signed_by(
    make_local_ivs: Callable[..., Awaitable[LocalIvs]], aio_session: AioSession
) -> AsyncIterator[tuple[LocalIvs, Client]]:
    """A local IVS with keys AKIDA and AKIDB mapped to two accounts, and a maker of IVS clients
    signing with a given key id."""
    ivs = await make_local_ivs(accounts=(("AKIDA", ACCOUNT_A), ("AKIDB", ACCOUNT_B)))
    async with AsyncExitStack() as stack:

        async def client(key: str) -> Any:
            return await stack.enter_async_context(
                aio_session.create_client(
                    "ivs",
                    region_name="us-west-2",
                    endpoint_url=ivs.url,
                    aws_access_key_id=key,
                    aws_secret_access_key="secret-never-shown",
                    config=AioConfig(retries={"total_max_attempts": 1}),
                )
            )

        yield ivs, client


def test_account_options_and_authorization_headers_parse() -> None:
    """KEY=12 digits is an account option; anything else is refused; the key id comes from a
    SigV4 Credential scope."""
    assert parse_account_option("AKIDA=111111111111") == ("AKIDA", ACCOUNT_A)
    for bad in ("AKIDA", "=111111111111", "AKIDA=1111", "AKIDA=11111111111x"):
        with pytest.raises(ValueError, match="KEY_ID=ACCOUNT"):
            parse_account_option(bad)
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIDA/20261207/us-west-2/ivs/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert access_key_of(header) == "AKIDA"
    assert access_key_of(None) is None
    assert access_key_of("Bearer x") is None


async def test_each_key_creates_and_sees_its_own_account(
    signed_by: tuple[LocalIvs, Client],
) -> None:
    """CreateChannel makes the channel in the signing key's account (unlisted keys: the default
    account); ListChannels and ListStreams show only the caller's."""
    ivs, client = signed_by
    a, b, other = await client("AKIDA"), await client("AKIDB"), await client("someone")
    arn_a = (await a.create_channel(name="a"))["channel"]["arn"]
    arn_b = (await b.create_channel(name="b"))["channel"]["arn"]
    arn_d = (await other.create_channel(name="d"))["channel"]["arn"]
    assert arn_a.split(":")[4] == ACCOUNT_A
    assert arn_b.split(":")[4] == ACCOUNT_B
    assert arn_d.split(":")[4] == DEFAULT
    key_arn = (await a.list_stream_keys(channelArn=arn_a))["streamKeys"][0]["arn"]
    assert key_arn.split(":")[4] == ACCOUNT_A
    for arn in (arn_a, arn_b, arn_d):
        ivs.state.start_stream(arn)
    assert [c["arn"] for c in (await a.list_channels())["channels"]] == [arn_a]
    assert [s["channelArn"] for s in (await b.list_streams())["streams"]] == [arn_b]


async def test_another_accounts_resources_are_access_denied(
    signed_by: tuple[LocalIvs, Client],
) -> None:
    """Every operation naming another account's channel answers 403 AccessDeniedException,
    PutMetadata included, and nothing is recorded for it."""
    ivs, client = signed_by
    a, b = await client("AKIDA"), await client("AKIDB")
    arn_a = (await a.create_channel(name="a"))["channel"]["arn"]
    ivs.state.start_stream(arn_a)
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: b.get_channel(arn=arn_a),
        lambda: b.put_metadata(channelArn=arn_a, metadata="x"),
        lambda: b.get_stream(channelArn=arn_a),
        lambda: b.get_stream_session(channelArn=arn_a),
        lambda: b.batch_get_channel(arns=[arn_a]),
        lambda: b.list_tags_for_resource(resourceArn=arn_a),
        lambda: b.delete_channel(arn=arn_a),
    ]
    for call in calls:
        with pytest.raises(ClientError) as refused:
            await call()
        response = refused.value.response
        assert response["Error"]["Code"] == "AccessDeniedException"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert list(ivs.state.events) == []
    await a.put_metadata(channelArn=arn_a, metadata="mine")
    assert ivs.state.has_channel(arn_a)


async def test_metadata_events_record_the_signing_key_id(
    signed_by: tuple[LocalIvs, Client], http: aiohttp.ClientSession
) -> None:
    """/_local/metadata shows the access key id of each accepted call, never the secret."""
    ivs, client = signed_by
    a = await client("AKIDA")
    arn_a = (await a.create_channel(name="a"))["channel"]["arn"]
    ivs.state.start_stream(arn_a)
    await a.put_metadata(channelArn=arn_a, metadata="hello")
    async with http.get(f"{ivs.url}/_local/metadata") as response:
        body = await response.text()
    events = json.loads(body)["events"]
    assert [(e["accessKeyId"], e["metadata"]) for e in events] == [("AKIDA", "hello")]
    assert "secret-never-shown" not in body
