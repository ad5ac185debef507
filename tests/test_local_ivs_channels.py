"""Channel and stream key operations through real aiobotocore and boto3 clients."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from metadata_gateway.local_ivs import LocalIvs
from metadata_gateway.local_ivs.errors import IvsError
from metadata_gateway.local_ivs.pagination import decode_token, encode_token

CHANNEL_ARN = re.compile(r"arn:aws:ivs:us-west-2:123456789012:channel/[a-zA-Z0-9]{12}")
STREAM_KEY_ARN = re.compile(r"arn:aws:ivs:us-west-2:123456789012:stream-key/[a-zA-Z0-9]{12}")
PAGINATION_TOKEN = re.compile(r"[a-zA-Z0-9+/=_-]{1,1024}")
MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist"
MISSING_KEY = "arn:aws:ivs:us-west-2:123456789012:stream-key/doesNotExist"


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


async def test_create_channel_answers_ivs_defaults_and_a_stream_key(
    ivs_client: Any, local_ivs: LocalIvs
) -> None:
    """CreateChannel with a name answers IVS's defaults, a stream key and a local playback URL."""
    answer = await ivs_client.create_channel(name="demo")
    channel, key = answer["channel"], answer["streamKey"]
    assert CHANNEL_ARN.fullmatch(channel["arn"])
    channel_id = channel["arn"].rsplit("/", 1)[1]
    assert channel["name"] == "demo"
    assert channel["latencyMode"] == "LOW"
    assert channel["type"] == "STANDARD"
    assert channel["authorized"] is False
    assert channel["insecureIngest"] is False
    assert channel["preset"] == ""
    assert channel["recordingConfigurationArn"] == ""
    assert channel["tags"] == {}
    assert re.fullmatch(
        r"[a-z0-9]{12}\.global-contribute\.live-video\.net", channel["ingestEndpoint"]
    )
    assert channel["playbackUrl"] == f"{local_ivs.url}/_local/playback/{channel_id}.m3u8"
    assert STREAM_KEY_ARN.fullmatch(key["arn"])
    assert key["channelArn"] == channel["arn"]
    assert re.fullmatch(r"sk_us-west-2_[a-zA-Z0-9]{36}", key["value"])


async def test_create_channel_applies_options_and_the_advanced_default_preset(
    ivs_client: Any,
) -> None:
    """Named settings are kept; ADVANCED channels default to HIGHER_BANDWIDTH_DELIVERY."""
    answer = await ivs_client.create_channel(
        name="adv",
        latencyMode="NORMAL",
        type="ADVANCED_HD",
        authorized=True,
        insecureIngest=True,
        tags={"team": "live"},
    )
    channel = answer["channel"]
    assert (channel["latencyMode"], channel["type"]) == ("NORMAL", "ADVANCED_HD")
    assert (channel["authorized"], channel["insecureIngest"]) == (True, True)
    assert channel["preset"] == "HIGHER_BANDWIDTH_DELIVERY"
    assert channel["tags"] == {"team": "live"}


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"name": "has space"}, "ValidationException"),
        ({"name": "x" * 129}, "ValidationException"),
        ({"latencyMode": "ULTRA"}, "ValidationException"),
        ({"type": "PREMIUM"}, "ValidationException"),
        ({"preset": "CONSTRAINED_BANDWIDTH_DELIVERY"}, "ValidationException"),
        ({"tags": {"aws:owner": "x"}}, "ValidationException"),
        (
            {
                "recordingConfigurationArn": (
                    "arn:aws:ivs:us-west-2:123456789012:recording-configuration/abc"
                )
            },
            "ResourceNotFoundException",
        ),
    ],
)
async def test_create_channel_refuses_what_the_model_forbids(
    ivs_client: Any, arguments: dict[str, Any], code: str
) -> None:
    """Bad names, enum values, presets on STANDARD and unknown linked resources are refused."""
    with pytest.raises(ClientError) as raised:
        await ivs_client.create_channel(**arguments)
    assert _code(raised.value) == code
    assert raised.value.response["exceptionMessage"]


async def test_create_channel_beyond_the_channel_quota_is_refused(
    make_local_ivs: Callable[..., Awaitable[LocalIvs]],
    make_ivs_client: Callable[[str], Awaitable[Any]],
) -> None:
    """Past the per-account channel quota, CreateChannel is ServiceQuotaExceededException."""
    ivs = await make_local_ivs(max_channels=2)
    client = await make_ivs_client(ivs.url)
    await client.create_channel()
    await client.create_channel()
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        await client.create_channel()


async def test_get_channel_answers_the_channel(ivs_client: Any) -> None:
    """GetChannel answers the same channel CreateChannel did."""
    created = (await ivs_client.create_channel(name="one"))["channel"]
    got = (await ivs_client.get_channel(arn=created["arn"]))["channel"]
    assert got == created


async def test_get_channel_of_unknown_or_malformed_arn(ivs_client: Any) -> None:
    """An unknown ARN is ResourceNotFoundException; a malformed one ValidationException."""
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException) as raised:
        await ivs_client.get_channel(arn=MISSING_CHANNEL)
    assert MISSING_CHANNEL in raised.value.response["exceptionMessage"]
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.get_channel(arn="arn:aws:ivs:us-west-2:123456789012:stream-key/abc")


async def test_batch_get_channel_splits_known_and_unknown(ivs_client: Any) -> None:
    """BatchGetChannel answers known channels and lists unknown ARNs in `errors`."""
    arn = (await ivs_client.create_channel(name="known"))["channel"]["arn"]
    answer = await ivs_client.batch_get_channel(arns=[arn, MISSING_CHANNEL])
    assert [channel["arn"] for channel in answer["channels"]] == [arn]
    assert answer["errors"] == [
        {
            "arn": MISSING_CHANNEL,
            "code": "ResourceNotFoundException",
            "message": f"Resource: {MISSING_CHANNEL} not found",
        }
    ]


async def test_batch_get_channel_refuses_more_than_50_arns(ivs_client: Any) -> None:
    """The model allows at most 50 ARNs per batch."""
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.batch_get_channel(arns=[MISSING_CHANNEL] * 51)


async def test_list_channels_pages_through_seven_channels(ivs_client: Any) -> None:
    """maxResults 3 over 7 channels gives pages of 3, 3 and 1, in creation order."""
    created = [(await ivs_client.create_channel(name=f"c{i}"))["channel"]["arn"] for i in range(7)]
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        extra = {"nextToken": token} if token else {}
        answer = await ivs_client.list_channels(maxResults=3, **extra)
        pages.append([channel["arn"] for channel in answer["channels"]])
        token = answer.get("nextToken")
        if token is None:
            break
        assert PAGINATION_TOKEN.fullmatch(token)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [arn for page in pages for arn in page] == created


async def test_list_channels_summaries_carry_no_secrets(ivs_client: Any) -> None:
    """ListChannels answers ChannelSummary shapes: no ingest endpoint, no playback URL."""
    await ivs_client.create_channel(name="summary", tags={"k": "v"})
    (summary,) = (await ivs_client.list_channels())["channels"]
    assert summary["name"] == "summary"
    assert summary["tags"] == {"k": "v"}
    assert "ingestEndpoint" not in summary
    assert "playbackUrl" not in summary


async def test_list_channels_filters_by_name_substring(ivs_client: Any) -> None:
    """filterByName keeps channels whose name contains the filter (documented choice)."""
    for name in ("news-main", "sports-main", "news-backup"):
        await ivs_client.create_channel(name=name)
    news = await ivs_client.list_channels(filterByName="news")
    main = await ivs_client.list_channels(filterByName="main")
    assert sorted(channel["name"] for channel in news["channels"]) == ["news-backup", "news-main"]
    assert sorted(channel["name"] for channel in main["channels"]) == ["news-main", "sports-main"]


async def test_list_channels_refuses_two_filters_at_once(ivs_client: Any) -> None:
    """IVS's filters are mutually exclusive: two at once is ConflictException."""
    with pytest.raises(ivs_client.exceptions.ConflictException):
        await ivs_client.list_channels(
            filterByName="x",
            filterByRecordingConfigurationArn=(
                "arn:aws:ivs:us-west-2:123456789012:recording-configuration/abc"
            ),
        )


async def test_list_channels_refuses_bad_paging_arguments(ivs_client: Any) -> None:
    """maxResults above 100 and a token this server never issued are ValidationException."""
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.list_channels(maxResults=101)
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.list_channels(nextToken="bm90LW91cnM=")


async def test_list_channels_refuses_max_results_zero_on_the_wire(
    local_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """maxResults 0 (which botocore refuses before sending) is ValidationException here too."""
    async with http.post(f"{local_ivs.url}/ListChannels", json={"maxResults": 0}) as response:
        assert response.status == 400
        assert response.headers["x-amzn-ErrorType"] == "ValidationException"
        assert "maxResults" in (await response.json())["exceptionMessage"]


async def test_update_channel_changes_only_named_settings(ivs_client: Any) -> None:
    """UpdateChannel applies the named settings and keeps the rest."""
    arn = (await ivs_client.create_channel(name="before", authorized=True))["channel"]["arn"]
    answer = await ivs_client.update_channel(arn=arn, name="after", latencyMode="NORMAL")
    channel = answer["channel"]
    assert (channel["name"], channel["latencyMode"], channel["authorized"]) == (
        "after",
        "NORMAL",
        True,
    )
    assert (await ivs_client.get_channel(arn=arn))["channel"] == channel


async def test_update_channel_resets_preset_when_leaving_advanced(ivs_client: Any) -> None:
    """Moving an ADVANCED channel to STANDARD clears its preset, as IVS does."""
    arn = (await ivs_client.create_channel(type="ADVANCED_SD"))["channel"]["arn"]
    channel = (await ivs_client.update_channel(arn=arn, type="STANDARD"))["channel"]
    assert channel["preset"] == ""


async def test_update_channel_refuses_live_and_unknown_channels(
    ivs_client: Any, live_channel: str
) -> None:
    """A live channel cannot be updated (409); an unknown one is not found."""
    with pytest.raises(ivs_client.exceptions.ConflictException):
        await ivs_client.update_channel(arn=live_channel, name="renamed")
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException):
        await ivs_client.update_channel(arn=MISSING_CHANNEL, name="x")


async def test_delete_channel_answers_204_and_deletes_its_stream_key(ivs_client: Any) -> None:
    """DeleteChannel answers 204 and takes the channel's stream key with it."""
    created = await ivs_client.create_channel()
    arn, key_arn = created["channel"]["arn"], created["streamKey"]["arn"]
    answer = await ivs_client.delete_channel(arn=arn)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException):
        await ivs_client.get_channel(arn=arn)
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException):
        await ivs_client.get_stream_key(arn=key_arn)


async def test_delete_channel_refuses_a_live_channel(ivs_client: Any, live_channel: str) -> None:
    """Deleting a live channel is ConflictException; after StopStream it works."""
    with pytest.raises(ivs_client.exceptions.ConflictException):
        await ivs_client.delete_channel(arn=live_channel)
    await ivs_client.stop_stream(channelArn=live_channel)
    await ivs_client.delete_channel(arn=live_channel)


async def test_delete_channel_of_unknown_arn(ivs_client: Any) -> None:
    """Deleting an unknown channel is ResourceNotFoundException."""
    with pytest.raises(ivs_client.exceptions.ResourceNotFoundException):
        await ivs_client.delete_channel(arn=MISSING_CHANNEL)


async def test_second_stream_key_exceeds_the_quota(ivs_client: Any) -> None:
    """IVS allows one stream key per channel: a second is ServiceQuotaExceededException."""
    arn = (await ivs_client.create_channel())["channel"]["arn"]
    with pytest.raises(ivs_client.exceptions.ServiceQuotaExceededException):
        await ivs_client.create_stream_key(channelArn=arn)


async def test_stream_key_lifecycle(ivs_client: Any) -> None:
    """Delete the key, create a new one, get it, batch-get it and list it (without its value)."""
    created = await ivs_client.create_channel()
    arn, old_key = created["channel"]["arn"], created["streamKey"]["arn"]
    deleted = await ivs_client.delete_stream_key(arn=old_key)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert (await ivs_client.list_stream_keys(channelArn=arn))["streamKeys"] == []

    key = (await ivs_client.create_stream_key(channelArn=arn, tags={"k": "v"}))["streamKey"]
    assert key["tags"] == {"k": "v"}
    assert (await ivs_client.get_stream_key(arn=key["arn"]))["streamKey"] == key
    batch = await ivs_client.batch_get_stream_key(arns=[key["arn"], old_key])
    assert batch["streamKeys"] == [key]
    assert [error["arn"] for error in batch["errors"]] == [old_key]
    listed = await ivs_client.list_stream_keys(channelArn=arn, maxResults=50)
    assert listed["streamKeys"] == [{"arn": key["arn"], "channelArn": arn, "tags": {"k": "v"}}]
    assert "nextToken" not in listed


async def test_stream_key_operations_on_unknown_resources(ivs_client: Any) -> None:
    """Stream key operations on unknown keys or channels are ResourceNotFoundException."""
    exceptions = ivs_client.exceptions
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.get_stream_key(arn=MISSING_KEY)
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.delete_stream_key(arn=MISSING_KEY)
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.create_stream_key(channelArn=MISSING_CHANNEL)
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.list_stream_keys(channelArn=MISSING_CHANNEL)
    with pytest.raises(exceptions.ValidationException):
        await ivs_client.list_stream_keys(channelArn=MISSING_CHANNEL, maxResults=51)
    with pytest.raises(exceptions.ValidationException):
        await ivs_client.get_stream_key(arn=MISSING_CHANNEL)


async def test_channel_operations_through_boto3(boto3_client: Any) -> None:
    """The blocking boto3 client drives create, get, list, update, keys and delete."""
    created = await asyncio.to_thread(boto3_client.create_channel, name="sync")
    arn = created["channel"]["arn"]
    got = await asyncio.to_thread(boto3_client.get_channel, arn=arn)
    assert got["channel"]["name"] == "sync"
    listed = await asyncio.to_thread(boto3_client.list_channels, filterByName="sync")
    assert [channel["arn"] for channel in listed["channels"]] == [arn]
    updated = await asyncio.to_thread(boto3_client.update_channel, arn=arn, type="BASIC")
    assert updated["channel"]["type"] == "BASIC"
    keys = await asyncio.to_thread(boto3_client.list_stream_keys, channelArn=arn)
    assert [key["arn"] for key in keys["streamKeys"]] == [created["streamKey"]["arn"]]
    with pytest.raises(boto3_client.exceptions.ServiceQuotaExceededException):
        await asyncio.to_thread(boto3_client.create_stream_key, channelArn=arn)
    await asyncio.to_thread(boto3_client.delete_channel, arn=arn)
    with pytest.raises(boto3_client.exceptions.ResourceNotFoundException):
        await asyncio.to_thread(boto3_client.get_channel, arn=arn)


@pytest.mark.parametrize("listing", ["channels", "stream-keys:AbCd1234", "a:b:c"])
def test_page_tokens_resume_listings_whose_names_hold_colons(listing: str) -> None:
    """A token names its listing and position; a colon in the listing's name (the stream keys
    of one channel) must not make the token unreadable, nor fit another listing."""
    token = encode_token(listing, 7)
    assert decode_token(listing, token) == 7
    with pytest.raises(IvsError, match="nextToken is invalid"):
        decode_token(listing + "x", token)
