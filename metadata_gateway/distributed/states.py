"""Sent state cues that go on repeating, kept in Redis so that a partition's next owner repeats
them on the same schedule.

A state cue's stream entry is settled at its first delivery; when the cue goes on repeating, the
settle script keeps its record in the channel's `states` hash instead (the newest of each key
only). The owner keeps each record's last send time up to date and deletes the record once the
cue stops repeating (cancelled, superseded, its session ended); a record past its TTL is deleted
by whoever finds it. The next owner loads the records and repeats each from its last send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from metadata_gateway.core.cues import Cue
from metadata_gateway.distributed.keys import PartitionKeys, partition_of
from metadata_gateway.distributed.probe import RedisProbe
from metadata_gateway.distributed.store import decode_cue, encode_cue

# KEYS: the channel's states hash. ARGV: id, record. Only a record still kept is rewritten (a
# cancel may have deleted it meanwhile).
_TOUCH = """
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 then
  return redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
end
return 0
"""
# KEYS: the channel's states hash, the partition's state channels set. ARGV: channel, ids.
_FORGET = """
for i = 2, #ARGV do redis.call("HDEL", KEYS[1], ARGV[i]) end
if redis.call("HLEN", KEYS[1]) == 0 then redis.call("SREM", KEYS[2], ARGV[1]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A repeating state cue as Redis keeps it."""

    cue: Cue
    expires_wall: float  # Unix seconds: its TTL's end, when it stops repeating by itself
    last_sent_wall: float  # Unix seconds: when IVS last accepted it

    def encode(self) -> bytes:
        """The record's value in its channel's states hash (`k` is read by the settle script)."""
        return orjson.dumps(
            {
                "c": encode_cue(self.cue).decode(),
                "k": self.cue.key,
                "x": self.expires_wall,
                "ls": self.last_sent_wall,
            }
        )

    def as_json(self) -> dict[str, Any]:
        """The entry of a channel view's `repeating_cues`."""
        cue = self.cue
        return {"id": cue.id, "key": cue.key, "repeat_ms": round((cue.repeat or 0) * 1000)}


def decode_record(raw: bytes | str) -> StateRecord:
    """The record `StateRecord.encode` wrote."""
    obj: dict[str, Any] = orjson.loads(raw)
    return StateRecord(decode_cue(obj["c"]), float(obj["x"]), float(obj["ls"]))


class StateRecords:
    """Reads and changes the repeating state records of a partition's channels."""

    def __init__(self, redis: Redis, *, partitions: int, probe: RedisProbe) -> None:
        self._redis = redis
        self._partitions = partitions
        self._probe = probe
        self._touch = redis.register_script(_TOUCH)
        self._forget = redis.register_script(_FORGET)

    def __repr__(self) -> str:
        return f"<StateRecords partitions={self._partitions}>"

    def _keys(self, channel: str) -> PartitionKeys:
        return PartitionKeys(partition_of(channel, self._partitions))

    async def touch(self, records: Sequence[StateRecord]) -> None:
        """Write the last send time of records still kept."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in records:
                keys = [self._keys(record.cue.channel).states(record.cue.channel)]
                await self._touch(keys=keys, args=[record.cue.id, record.encode()], client=pipe)
            with self._probe.timed("settle"):
                await pipe.execute()

    async def forget(self, channel: str, ids: Sequence[str]) -> None:
        """Delete these records of `channel`: the cues stopped repeating."""
        part = self._keys(channel)
        with self._probe.timed("settle"):
            await self._forget(
                keys=[part.states(channel), part.state_channels], args=[channel, *ids]
            )

    async def of_channel(self, channel: str, wall: float) -> list[StateRecord]:
        """The records of one channel still within their TTL at `wall`."""
        raw = await self._redis.hvals(self._keys(channel).states(channel))
        return [r for r in map(decode_record, raw) if r.expires_wall > wall]

    async def of_partition(self, partition: int, wall: float) -> list[StateRecord]:
        """Every record of a partition still within its TTL at `wall`; expired ones are deleted."""
        part = PartitionKeys(partition)
        channels = [_text(c) for c in await self._redis.smembers(part.state_channels)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.hvals(part.states(channel))
            answers = await pipe.execute()
        kept: list[StateRecord] = []
        for channel, raw in zip(channels, answers, strict=True):
            records = [decode_record(value) for value in raw]
            expired = [r.cue.id for r in records if r.expires_wall <= wall]
            if expired or not records:
                await self.forget(channel, expired)
            kept += [r for r in records if r.expires_wall > wall]
        return kept


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
