"""Amazon IVS channel ARNs: the pattern IVS enforces, and the account and region they name."""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass

# From botocore's IVS model (shape ChannelArn); botocore itself does not check it before sending.
CHANNEL_ARN_PATTERN = re.compile(r"arn:aws:ivs:([a-z0-9-]+):([0-9]+):channel/([a-zA-Z0-9-]+)")
MAX_ARN_LENGTH = 128  # ChannelArn max length in the IVS model


@dataclass(frozen=True, slots=True)
class ChannelArn:
    """A parsed channel ARN; `budget` names the account-wide PutMetadata budget it draws on."""

    arn: str
    region: str
    account: str
    channel_id: str

    @property
    def budget(self) -> tuple[str, str]:
        """The (region, account) pair whose 155 calls/s quota this channel shares."""
        return (self.region, self.account)


@functools.lru_cache(maxsize=65_536)  # every cue names one; most name the same few channels
def parse_channel_arn(value: str) -> ChannelArn | None:
    """Return the parsed ARN, or None when `value` is not a valid IVS channel ARN."""
    if not 1 <= len(value) <= MAX_ARN_LENGTH:
        return None
    match = CHANNEL_ARN_PATTERN.fullmatch(value)
    if match is None:
        return None
    region, account, channel_id = match.groups()
    # Thousands of channels share a few regions and accounts: keep one copy of each.
    return ChannelArn(
        arn=value, region=sys.intern(region), account=sys.intern(account), channel_id=channel_id
    )
