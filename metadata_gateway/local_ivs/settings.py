"""The local IVS's settings: where it listens, whose account it plays, and IVS's limits."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4599
DEFAULT_REGION = "us-west-2"
DEFAULT_ACCOUNT_ID = "123456789012"  # the placeholder account AWS's own docs use
DEFAULT_CHANNEL_RATE = 5  # IVS PutMetadata quota: 5 requests/s per channel (not adjustable)
DEFAULT_ACCOUNT_RATE = 155  # IVS PutMetadata quota: 155 requests/s per account and region
DEFAULT_MAX_EVENTS = 100_000  # accepted payloads kept for the admin API, oldest evicted
DEFAULT_MAX_CHANNELS = 5_000  # IVS's default "Channels" quota per account and region

# The region and account parts of the model's ChannelArn pattern.
_REGION_PATTERN = re.compile(r"[a-z0-9-]+")
_ACCOUNT_PATTERN = re.compile(r"[0-9]+")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")


@dataclass(frozen=True, slots=True)
class LocalIvsSettings:
    """Everything the local IVS needs to start; the constructor refuses impossible values."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    channel_rate: int = DEFAULT_CHANNEL_RATE
    account_rate: int = DEFAULT_ACCOUNT_RATE
    max_events: int = DEFAULT_MAX_EVENTS
    max_channels: int = DEFAULT_MAX_CHANNELS
    playback: bool = False  # serve live HLS at each channel's playbackUrl (needs ffmpeg)
    # (access key id, account): requests signed with that key act in that account.
    accounts: tuple[tuple[str, str], ...] = ()
    events_queue_url: str | None = None  # SQS queue that receives EventBridge-shaped events
    sqs_endpoint_url: str | None = None  # a local SQS server for it (else AWS's)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {self.port}")
        if _REGION_PATTERN.fullmatch(self.region) is None:
            raise ValueError(f"region must match [a-z0-9-]+, not {self.region!r}")
        if _ACCOUNT_PATTERN.fullmatch(self.account_id) is None:
            raise ValueError(f"account id must be digits, not {self.account_id!r}")
        for key, account in self.accounts:
            if not key or _ACCOUNT_ID.fullmatch(account) is None:
                raise ValueError(f"account {key}={account}: needs a key id and 12 digits")
        if self.sqs_endpoint_url and not self.events_queue_url:
            raise ValueError("sqs endpoint url is only used with an events queue url")
        for name in ("channel_rate", "account_rate", "max_events", "max_channels"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1, not {value}")

    @property
    def account_keys(self) -> dict[str, str]:
        """Access key id -> the account its requests act in."""
        return dict(self.accounts)

    @property
    def default_url(self) -> str:
        """The base URL the settings name (before binding, so port 0 stays 0)."""
        return base_url(self.host, self.port)


def base_url(host: str, port: int) -> str:
    """Return `http://host:port`, bracketing an IPv6 literal."""
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    return f"http://[{host}]:{port}" if is_v6 else f"http://{host}:{port}"
