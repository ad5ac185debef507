"""TagResource, UntagResource and ListTagsForResource on channels and stream keys."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from metadata_gateway.local_ivs import LocalIvs

MISSING_CHANNEL = "arn:aws:ivs:us-west-2:123456789012:channel/doesNotExist"


async def test_tags_round_trip_on_a_channel(ivs_client: Any) -> None:
    """Tags set at creation, added, replaced and removed show in ListTags and GetChannel."""
    arn = (await ivs_client.create_channel(tags={"a": "1", "b": "2"}))["channel"]["arn"]
    await ivs_client.tag_resource(resourceArn=arn, tags={"b": "two", "c": "3"})
    await ivs_client.untag_resource(resourceArn=arn, tagKeys=["a", "not-there"])
    expected = {"b": "two", "c": "3"}
    assert (await ivs_client.list_tags_for_resource(resourceArn=arn))["tags"] == expected
    assert (await ivs_client.get_channel(arn=arn))["channel"]["tags"] == expected


async def test_tags_round_trip_on_a_stream_key(ivs_client: Any) -> None:
    """Stream keys carry their own tags, separate from their channel's."""
    created = await ivs_client.create_channel(tags={"on": "channel"})
    key_arn = created["streamKey"]["arn"]
    await ivs_client.tag_resource(resourceArn=key_arn, tags={"on": "key"})
    assert (await ivs_client.list_tags_for_resource(resourceArn=key_arn))["tags"] == {"on": "key"}
    assert (await ivs_client.get_stream_key(arn=key_arn))["streamKey"]["tags"] == {"on": "key"}
    channel_arn = created["channel"]["arn"]
    channel_tags = await ivs_client.list_tags_for_resource(resourceArn=channel_arn)
    assert channel_tags["tags"] == {"on": "channel"}


async def test_a_resource_holds_at_most_50_tags(ivs_client: Any) -> None:
    """Tags that would take a resource past 50 are refused, and none of them is applied."""
    arn = (await ivs_client.create_channel(tags={f"k{i}": "v" for i in range(45)}))["channel"][
        "arn"
    ]
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.tag_resource(resourceArn=arn, tags={f"n{i}": "v" for i in range(6)})
    assert len((await ivs_client.list_tags_for_resource(resourceArn=arn))["tags"]) == 45
    await ivs_client.tag_resource(resourceArn=arn, tags={f"n{i}": "v" for i in range(5)})
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.create_channel(tags={f"k{i}": "v" for i in range(51)})


@pytest.mark.parametrize(
    "tags",
    [{"k" * 129: "v"}, {"k": "v" * 257}, {"aws:reserved": "v"}, {"bad#key": "v"}],
    ids=["key-129", "value-257", "aws-prefix", "bad-character"],
)
async def test_tag_keys_and_values_are_checked(ivs_client: Any, tags: dict[str, str]) -> None:
    """Keys of 1-128 and values of 0-256 allowed characters, no `aws:` prefix."""
    arn = (await ivs_client.create_channel())["channel"]["arn"]
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.tag_resource(resourceArn=arn, tags=tags)


async def test_unicode_letters_are_allowed_in_tags(ivs_client: Any) -> None:
    """The model's \\p{L}\\p{Z}\\p{N} classes admit letters, spaces and digits of any script."""
    arn = (await ivs_client.create_channel())["channel"]["arn"]
    await ivs_client.tag_resource(resourceArn=arn, tags={"équipe 2": "Köln ١٢"})
    assert (await ivs_client.list_tags_for_resource(resourceArn=arn))["tags"] == {
        "équipe 2": "Köln ١٢"
    }


async def test_tag_operations_on_unknown_or_malformed_arns(ivs_client: Any) -> None:
    """Unknown resources are ResourceNotFoundException; non-IVS ARNs ValidationException."""
    exceptions = ivs_client.exceptions
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.list_tags_for_resource(resourceArn=MISSING_CHANNEL)
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.tag_resource(resourceArn=MISSING_CHANNEL, tags={"a": "b"})
    with pytest.raises(exceptions.ResourceNotFoundException):
        await ivs_client.untag_resource(resourceArn=MISSING_CHANNEL, tagKeys=["a"])
    with pytest.raises(exceptions.ValidationException):
        await ivs_client.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")


async def test_untag_without_keys_is_refused(ivs_client: Any) -> None:
    """botocore sends no tagKeys for an empty list, so the required member is missing (400)."""
    arn = (await ivs_client.create_channel())["channel"]["arn"]
    with pytest.raises(ivs_client.exceptions.ValidationException):
        await ivs_client.untag_resource(resourceArn=arn, tagKeys=[])


async def test_tag_paths_take_the_percent_encoded_arn(
    local_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """`/tags/{resourceArn}` with ':' and '/' percent-encoded, as botocore sends it, works raw."""
    arn = local_ivs.state.create_channel(tags={"x": "y"})["channel"]["arn"]
    url = f"{local_ivs.url}/tags/{quote(arn, safe='')}"
    assert "%2F" in url
    assert "%3A" in url
    async with http.get(url) as response:
        assert response.status == 200
        assert await response.json() == {"tags": {"x": "y"}}
    async with http.delete(url, params=[("tagKeys", "x"), ("tagKeys", "z")]) as response:
        assert response.status == 200
    assert local_ivs.state.list_tags_for_resource(arn) == {"tags": {}}


async def test_tag_operations_through_boto3(boto3_client: Any) -> None:
    """The blocking boto3 client drives the three tag operations."""
    arn = (await asyncio.to_thread(boto3_client.create_channel))["channel"]["arn"]
    await asyncio.to_thread(boto3_client.tag_resource, resourceArn=arn, tags={"a": "1", "b": "2"})
    await asyncio.to_thread(boto3_client.untag_resource, resourceArn=arn, tagKeys=["a"])
    listed = await asyncio.to_thread(boto3_client.list_tags_for_resource, resourceArn=arn)
    assert listed["tags"] == {"b": "2"}
