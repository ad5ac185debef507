"""Durable accept and settle: the cues of each partition in a Redis Stream, with their
idempotency markers and pending counters, each change made atomically by a Lua script."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from metadata_gateway.core.cues import Cue, Priority
from metadata_gateway.distributed.keys import GROUP, PartitionKeys, partition_of
from metadata_gateway.distributed.probe import RedisProbe

_Arg = bytes | str | int | float
IDEMPOTENCY_TTL_MS = 600_000  # the README's 10 minutes for ids queued or delivered
# How long an accept waits for its replicas (WAIT); below the client's 3 s socket timeout.
WAIT_REPLICAS_MS = 1000

# KEYS: per cue, its partition's stream, counts hash and id marker (3 keys each).
# ARGV: channel_max_cues, channel_max_bytes, partition_max_cues, partition_max_bytes, id_ttl_ms,
# then per cue: channel, client_id (0/1), size, body.
# Returns per cue "q" (queued), "dq" or "dd" (duplicate of a queued / delivered cue),
# or {"full", scope, channel, cues, bytes} and changes nothing.
_ACCEPT = """
local cmax, bmax = tonumber(ARGV[1]), tonumber(ARGV[2])
local pcmax, pbmax = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl = ARGV[5]
local n = #KEYS / 3
local status, seen, add = {}, {}, {}
for i = 1, n do
  local a = 5 + (i - 1) * 4
  local channel, client, size = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local idkey, counts = KEYS[(i - 1) * 3 + 3], KEYS[(i - 1) * 3 + 2]
  local dup = nil
  if client == "1" then
    dup = redis.call("GET", idkey)
    if not dup and seen[idkey] then dup = "q" end
    seen[idkey] = true
  end
  if dup then
    status[i] = "d" .. dup
  else
    status[i] = "q"
    for _, f in ipairs({"n:" .. channel, "n:*"}) do
      local k = counts .. "|" .. f
      add[k] = add[k] or {counts, f, 0, 0}
      add[k][3] = add[k][3] + 1
      add[k][4] = add[k][4] + size
    end
  end
end
for _, v in pairs(add) do
  local field = v[2]
  local star = field == "n:*"
  local have = tonumber(redis.call("HGET", v[1], field) or "0")
  local bfield = "b:" .. string.sub(field, 3)
  local bytes = tonumber(redis.call("HGET", v[1], bfield) or "0")
  local cm, bm = cmax, bmax
  if star then cm, bm = pcmax, pbmax end
  if have + v[3] > cm or bytes + v[4] > bm then
    return {"full", star and "process" or "channel", string.sub(field, 3), have, bytes}
  end
end
local t = redis.call("TIME")
local wall = t[1] .. string.format("%06d", tonumber(t[2]))
for i = 1, n do
  if status[i] == "q" then
    local a = 5 + (i - 1) * 4
    local channel, client, size, body = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local k = (i - 1) * 3
    local stream, counts, idkey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    redis.call("XADD", stream, "*", "c", body, "w", wall)
    if client == "1" then redis.call("SET", idkey, "q", "PX", ttl) end
    redis.call("HINCRBY", counts, "n:" .. channel, 1)
    redis.call("HINCRBY", counts, "n:*", 1)
    redis.call("HINCRBY", counts, "b:" .. channel, size)
    redis.call("HINCRBY", counts, "b:*", size)
  end
end
return status
"""

# KEYS: stream, counts, then one id marker per entry. ARGV: group, id_ttl_ms, then per entry:
# entry id, channel, size, outcome ("d" delivered / "x" dropped), client_id (0/1).
# An entry another owner already settled changes nothing (XDEL answers 0), so settling twice
# after a change of owner never counts a cue out twice.
_SETTLE = """
local stream, counts = KEYS[1], KEYS[2]
local group, ttl = ARGV[1], ARGV[2]
local n = (#ARGV - 2) / 5
local settled = 0
for i = 1, n do
  local a = 2 + (i - 1) * 5
  local entry, channel, size = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local outcome, client = ARGV[a + 4], ARGV[a + 5]
  redis.call("XACK", stream, group, entry)
  if redis.call("XDEL", stream, entry) == 1 then
    settled = settled + 1
    redis.call("HINCRBY", counts, "n:" .. channel, -1)
    redis.call("HINCRBY", counts, "n:*", -1)
    redis.call("HINCRBY", counts, "b:" .. channel, -size)
    redis.call("HINCRBY", counts, "b:*", -size)
    if tonumber(redis.call("HGET", counts, "n:" .. channel) or "0") <= 0 then
      redis.call("HDEL", counts, "n:" .. channel, "b:" .. channel)
    end
  end
  if client == "1" then
    local idkey = KEYS[2 + i]
    if outcome == "d" then
      redis.call("SET", idkey, "d", "PX", ttl)
    else
      redis.call("DEL", idkey)
    end
  end
end
return settled
"""


class NotReplicated(RedisError):
    """The cues are on the primary, but fewer replicas than asked confirmed them in time."""


@dataclass(frozen=True, slots=True)
class Full:
    """A queue bound the accept script found reached."""

    scope: str  # "channel" or "process" (the partition's share of the process bound)
    channel: str
    cues: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Entry:
    """A cue as read back from its partition's stream."""

    partition: int
    entry_id: str
    cue: Cue
    accepted_wall: float  # Redis's clock at accept, Unix seconds


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one entry: delivered or dropped."""

    partition: int
    entry_id: str
    channel: str
    cue_id: str
    size: int
    delivered: bool
    client_id: bool


def encode_cue(cue: Cue) -> bytes:
    """A validated cue as its stream entry keeps it."""
    return orjson.dumps(
        {
            "i": cue.id,
            "ch": cue.channel,
            "t": cue.type,
            "it": cue.item.decode(),
            "k": cue.key,
            "ttl": cue.ttl,
            "p": int(cue.priority),
            "cid": cue.client_id,
            "nb": cue.not_before,
            "r": cue.repeat,
        }
    )


def decode_cue(body: bytes | str) -> Cue:
    """The cue `encode_cue` kept."""
    obj: dict[str, Any] = orjson.loads(body)
    return Cue(
        id=obj["i"],
        channel=obj["ch"],
        type=obj["t"],
        item=obj["it"].encode(),
        key=obj["k"],
        ttl=float(obj["ttl"]),
        priority=Priority(obj["p"]),
        client_id=bool(obj["cid"]),
        not_before=obj["nb"],
        repeat=obj["r"],
    )


def decode_entry(partition: int, entry_id: bytes | str, fields: dict[Any, Any]) -> Entry:
    """One XREADGROUP / XAUTOCLAIM entry."""
    body: bytes | str = fields.get(b"c", fields.get("c")) or b""
    wall: bytes | str = fields.get(b"w", fields.get("w")) or b"0"
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Entry(partition, eid, decode_cue(body), int(wall) / 1e6)


class CueStore:
    """The partitioned streams of accepted cues."""

    def __init__(
        self,
        redis: Redis,
        *,
        partitions: int,
        wait_replicas: int = 0,
        probe: RedisProbe | None = None,
    ) -> None:
        self.redis = redis
        self.probe = probe or RedisProbe()
        self.partitions = partitions
        self.wait_replicas = wait_replicas
        self._accept = redis.register_script(_ACCEPT)
        self._settle = redis.register_script(_SETTLE)

    def __repr__(self) -> str:
        return f"<CueStore partitions={self.partitions}>"

    def keys(self, channel: str) -> PartitionKeys:
        """The keys of the partition a channel belongs to."""
        return PartitionKeys(partition_of(channel, self.partitions))

    async def create_groups(self) -> None:
        """Create every partition's stream and consumer group (idempotent)."""
        for index in range(self.partitions):
            await self.create_group(index)

    async def create_group(self, partition: int) -> None:
        """Create one partition's stream and group; from id 0, so that cues accepted before
        the group existed are read too."""
        try:
            await self.redis.xgroup_create(
                PartitionKeys(partition).stream, GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # BUSYGROUP: it exists already
                raise

    async def accept(
        self,
        cues: Sequence[Cue],
        *,
        channel_max: tuple[int, int],
        partition_max: tuple[int, int],
    ) -> list[str] | Full:
        """Keep `cues` all or none; per cue "q", "dq" or "dd", or the bound that was reached."""
        keys: list[str] = []
        args: list[_Arg] = [*channel_max, *partition_max, IDEMPOTENCY_TTL_MS]
        for cue in cues:
            part = self.keys(cue.channel)
            keys += [part.stream, part.counts, part.idempotency(cue.channel, cue.id)]
            args += [cue.channel, int(cue.client_id), len(cue.item), encode_cue(cue)]
        if not self.wait_replicas:
            with self.probe.timed("accept"):
                answer = await self._accept(keys=keys, args=args)
        else:
            # WAIT counts the writes of its own connection: one pipeline, one connection.
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._accept(keys=keys, args=args, client=pipe)
                pipe.wait(self.wait_replicas, WAIT_REPLICAS_MS)
                answer, replicated = await pipe.execute()
            if int(replicated) < self.wait_replicas:
                raise NotReplicated(
                    f"{replicated} of {self.wait_replicas} Redis replicas confirmed the cues"
                )
        if answer and _text(answer[0]) == "full":
            _, scope, channel, count, size = answer
            return Full(_text(scope), _text(channel), int(count), int(size))
        return [_text(a) for a in answer]

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Acknowledge and delete settled entries, one script per partition."""
        by_partition: dict[int, list[Settlement]] = {}
        for item in settlements:
            by_partition.setdefault(item.partition, []).append(item)
        for index, items in by_partition.items():
            part = PartitionKeys(index)
            keys = [part.stream, part.counts]
            args: list[_Arg] = [GROUP, IDEMPOTENCY_TTL_MS]
            for item in items:
                keys.append(part.idempotency(item.channel, item.cue_id))
                args += [
                    item.entry_id,
                    item.channel,
                    item.size,
                    "d" if item.delivered else "x",
                    int(item.client_id),
                ]
            with self.probe.timed("settle"):
                await self._settle(keys=keys, args=args)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
