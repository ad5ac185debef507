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
CHANNELS = "mg:channels"  # ZSET: every channel a cue was accepted for -> when it was first met
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

    @property
    def entries(self) -> str:
        """HASH: `<channel> <id>` -> `<stream entry> <size> <scheduled member>` of each cue not
        yet sent or dropped, for a cancel from any replica."""
        return f"mg:{self.tag}:e"

    @property
    def state_channels(self) -> str:
        """SET: the channels of this partition with repeating state cues."""
        return f"mg:{self.tag}:rc"

    @property
    def facts(self) -> str:
        """HASH: what the owner reports of each channel: l:/e:/r:/d:<channel> for liveness,
        last error, calls sent and cues delivered."""
        return f"mg:{self.tag}:f"

    def scheduled(self, channel: str) -> str:
        """ZSET: a channel's cues held until their not_before (the score, Unix seconds)."""
        return f"mg:{self.tag}:t:{channel}"

    def states(self, channel: str) -> str:
        """HASH: id -> the record of a channel's sent state cue that goes on repeating."""
        return f"mg:{self.tag}:r:{channel}"

    def idempotency(self, channel: str, cue_id: str) -> str:
        """A client id's marker: `q` while queued, `d` once delivered."""
        return f"mg:{self.tag}:id:{channel}:{cue_id}"


def asks(replica: str) -> str:
    """LIST: requests for the replica that owns a channel (a cancel, say)."""
    return f"mg:ask:{replica}"


def answer(request: str) -> str:
    """LIST: the one answer to a request, pushed by the replica asked."""
    return f"mg:answer:{request}"


def budget_keys(channel_arn: str, budget: tuple[str, str]) -> tuple[str, str]:
    """The call windows of a channel and of its account and region (one slot per account)."""
    tag = f"{{b:{budget[0]}:{budget[1]}}}"
    return f"mg:{tag}:c:{channel_arn}", f"mg:{tag}:a"


def busy_key(budget: tuple[str, str]) -> str:
    """HASH: replica id -> its channels with cues waiting, for sharing the account fairly."""
    return f"mg:busy:{budget[0]}:{budget[1]}"
