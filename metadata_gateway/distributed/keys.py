"""Redis key names, and which partition a channel belongs to.

Every key of one partition carries the hash tag `{p<n>}` and every budget key the tag of its
account, so that each Lua script touches one Redis Cluster slot (a batch spanning partitions is
the exception, see docs/scaling.md).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

GROUP = "mg"  # the one consumer group of every partition stream
REPLICAS = "mg:replicas"  # ZSET: replica id -> last heartbeat (Redis time, ms)
RECEIPTS = "mg:receipts"  # pub/sub channel of sent / dropped receipts
ID_PREFIX = "mg:id-prefix"  # counter: each replica's number, the prefix of the cue ids it makes


def partition_of(channel_arn: str, partitions: int) -> int:
    """The partition a channel's cues live in: a stable hash, the same in every replica."""
    return zlib.crc32(channel_arn.encode()) % partitions


@dataclass(frozen=True, slots=True)
class PartitionKeys:
    """The keys of one partition."""

    index: int

    @property
    def tag(self) -> str:
        """The Cluster hash tag shared by the partition's keys."""
        return f"{{p{self.index}}}"

    @property
    def stream(self) -> str:
        """The Stream of accepted cues not yet sent or dropped."""
        return f"mg:{self.tag}:s"

    @property
    def counts(self) -> str:
        """HASH: n:<channel> / b:<channel> cues and bytes pending, n:* / b:* for the partition."""
        return f"mg:{self.tag}:q"

    @property
    def lease(self) -> str:
        """The owner's lease: its replica id, with a TTL."""
        return f"mg:{self.tag}:lease"

    @property
    def epoch(self) -> str:
        """The fencing counter, raised on every change of owner."""
        return f"mg:{self.tag}:epoch"

    def idempotency(self, channel: str, cue_id: str) -> str:
        """A client id's marker: `q` while queued, `d` once delivered."""
        return f"mg:{self.tag}:id:{channel}:{cue_id}"


def budget_keys(channel_arn: str, budget: tuple[str, str]) -> tuple[str, str]:
    """The call windows of a channel and of its account and region (one slot per account)."""
    tag = f"{{b:{budget[0]}:{budget[1]}}}"
    return f"mg:{tag}:c:{channel_arn}", f"mg:{tag}:a"


def busy_key(budget: tuple[str, str]) -> str:
    """HASH: replica id -> its channels with cues waiting, for sharing the account fairly."""
    return f"mg:busy:{budget[0]}:{budget[1]}"
