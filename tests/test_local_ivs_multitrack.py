"""Multitrack input rules, as botocore's model documents them, through a real aiobotocore client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

FULL = {"enabled": True, "policy": "ALLOW", "maximumResolution": "HD"}


def _refusal(error: ClientError) -> tuple[str, int, str]:
    response: dict[str, Any] = error.response
    return (
        str(response["Error"]["Code"]),
        int(response["ResponseMetadata"]["HTTPStatusCode"]),
        str(response.get("exceptionMessage", "")),
    )


async def test_multitrack_on_a_standard_fragmented_mp4_channel_is_accepted(
    ivs_client: Any,
) -> None:
    """enabled true with policy, maximumResolution, STANDARD and FRAGMENTED_MP4 is kept."""
    answer = await ivs_client.create_channel(
        type="STANDARD", containerFormat="FRAGMENTED_MP4", multitrackInputConfiguration=FULL
    )
    assert answer["channel"]["multitrackInputConfiguration"] == FULL
    assert answer["channel"]["containerFormat"] == "FRAGMENTED_MP4"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"type": "BASIC", "containerFormat": "FRAGMENTED_MP4"}, "STANDARD"),
        ({"type": "ADVANCED_HD", "containerFormat": "FRAGMENTED_MP4"}, "STANDARD"),
        ({"type": "STANDARD"}, "FRAGMENTED_MP4"),
        ({"type": "STANDARD", "containerFormat": "TS"}, "FRAGMENTED_MP4"),
    ],
)
async def test_multitrack_elsewhere_is_a_validation_exception(
    ivs_client: Any, options: dict[str, str], named: str
) -> None:
    """enabled true on a channel that is not STANDARD, or not FRAGMENTED_MP4, is refused 400."""
    with pytest.raises(ClientError) as refused:
        await ivs_client.create_channel(**options, multitrackInputConfiguration=FULL)
    code, status, message = _refusal(refused.value)
    assert (code, status) == ("ValidationException", 400)
    assert named in message
    assert (await ivs_client.list_channels())["channels"] == []


@pytest.mark.parametrize("missing", ["policy", "maximumResolution"])
async def test_multitrack_without_policy_or_resolution_is_refused(
    ivs_client: Any, missing: str
) -> None:
    """enabled true needs both policy and maximumResolution."""
    config = {k: v for k, v in FULL.items() if k != missing}
    with pytest.raises(ClientError) as refused:
        await ivs_client.create_channel(
            containerFormat="FRAGMENTED_MP4", multitrackInputConfiguration=config
        )
    code, status, message = _refusal(refused.value)
    assert (code, status) == ("ValidationException", 400)
    assert missing in message


async def test_multitrack_off_needs_nothing_and_update_keeps_the_rules(ivs_client: Any) -> None:
    """enabled false is fine anywhere; an update that would leave multitrack on a BASIC or TS
    channel is refused and changes nothing."""
    basic = await ivs_client.create_channel(
        type="BASIC", multitrackInputConfiguration={"enabled": False}
    )
    assert basic["channel"]["multitrackInputConfiguration"]["enabled"] is False
    arn = (
        await ivs_client.create_channel(
            containerFormat="FRAGMENTED_MP4", multitrackInputConfiguration=FULL
        )
    )["channel"]["arn"]
    for change in ({"type": "BASIC"}, {"containerFormat": "TS"}):
        with pytest.raises(ClientError) as refused:
            await ivs_client.update_channel(arn=arn, **change)
        assert _refusal(refused.value)[0] == "ValidationException"
    channel = (await ivs_client.get_channel(arn=arn))["channel"]
    assert (channel["type"], channel["containerFormat"]) == ("STANDARD", "FRAGMENTED_MP4")
    turned_off = await ivs_client.update_channel(
        arn=arn, type="BASIC", containerFormat="TS", multitrackInputConfiguration={"enabled": False}
    )
    assert turned_off["channel"]["type"] == "BASIC"
