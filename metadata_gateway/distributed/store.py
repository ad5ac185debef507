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
from metadata_gateway.distributed.keys import CHANNELS, GROUP, PartitionKeys, partition_of
from metadata_gateway.distributed.probe import RedisProbe

_Arg = bytes | str | int | float
IDEMPOTENCY_TTL_MS = 600_000  # the README's 10 minutes for ids queued or delivered
# How long an accept waits for its replicas (WAIT); below the client's 3 s socket timeout.
WAIT_REPLICAS_MS = 1000

# KEYS: the channel registry, then per cue its partition's stream, counts hash, id marker, entries
# hash and the channel's scheduled set (5 keys each).
# ARGV: channel_max_cues, channel_max_bytes, partition_max_cues, partition_max_bytes, id_ttl_ms,
# then per cue: channel, client_id (0/1), size, body, cue id, not_before ("" if none), member.
# Returns per cue "q" (queued), "dq" or "dd" (duplicate of a queued / delivered cue),
# or {"full", scope, channel, cues, bytes} and changes nothing.
_ACCEPT = """
local cmax, bmax = tonumber(ARGV[1]), tonumber(ARGV[2])
local pcmax, pbmax = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl = ARGV[5]
local K, A = 5, 7
local n = (#KEYS - 1) / K
local status, seen, add = {}, {}, {}
for i = 1, n do
  local a = 5 + (i - 1) * A
  local channel, client, size = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local counts, idkey = KEYS[1 + (i - 1) * K + 2], KEYS[1 + (i - 1) * K + 3]
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
local met = {}
for i = 1, n do
  if status[i] == "q" then
    local a = 5 + (i - 1) * A
    local channel, client, size, body = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local id, not_before, member = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
    local k = 1 + (i - 1) * K
    local stream, counts, idkey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local entries, scheduled = KEYS[k + 4], KEYS[k + 5]
    local entry = redis.call("XADD", stream, "*", "c", body, "w", wall)
    redis.call("HSET", entries, channel .. " " .. id, entry .. " " .. size .. " " .. member)
    if not_before ~= "" then redis.call("ZADD", scheduled, not_before, member) end
    if not met[channel] then
      met[channel] = true
      redis.call("ZADD", KEYS[1], "NX", tonumber(wall) + i, channel)  -- in the order met
    end
    if client == "1" then redis.call("SET", idkey, "q", "PX", ttl) end
    redis.call("HINCRBY", counts, "n:" .. channel, 1)
    redis.call("HINCRBY", counts, "n:*", 1)
    redis.call("HINCRBY", counts, "b:" .. channel, size)
    redis.call("HINCRBY", counts, "b:*", size)
  end
end
return status
"""

# A cue leaves its partition's counts: a Lua function for the scripts that delete entries.
COUNT_OUT = """
local function count_out(counts, channel, size)
  redis.call("HINCRBY", counts, "n:" .. channel, -1)
  redis.call("HINCRBY", counts, "n:*", -1)
  redis.call("HINCRBY", counts, "b:" .. channel, -size)
  redis.call("HINCRBY", counts, "b:*", -size)
  if tonumber(redis.call("HGET", counts, "n:" .. channel) or "0") <= 0 then
    redis.call("HDEL", counts, "n:" .. channel, "b:" .. channel)
  end
end
"""

# KEYS: stream, counts, entries hash, state channels set, then per entry its id marker, its
# channel's scheduled set and its channel's state records (3 keys each). ARGV: group, id_ttl_ms,
# then per entry: entry id, channel, size, outcome ("d" delivered / "x" dropped), client_id (0/1),
# cue id, scheduled member ("" if none), state record ("" if none), state key.
# An entry another owner already settled changes nothing (XDEL answers 0), so settling twice
# after a change of owner never counts a cue out twice, nor brings back a state record.
_SETTLE = (
    COUNT_OUT
    + """
local stream, counts, entries, state_channels = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, ttl = ARGV[1], ARGV[2]
local A = 9
local n = (#ARGV - 2) / A
local settled = 0
for i = 1, n do
  local a = 2 + (i - 1) * A
  local entry, channel, size = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local outcome, client, id = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local member, record, key = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local idkey, scheduled, states = KEYS[4 + (i - 1) * 3 + 1], KEYS[4 + (i - 1) * 3 + 2],
    KEYS[4 + (i - 1) * 3 + 3]
  redis.call("XACK", stream, group, entry)
  redis.call("HDEL", entries, channel .. " " .. id)
  if member ~= "" then redis.call("ZREM", scheduled, member) end
  if redis.call("XDEL", stream, entry) == 1 then
    settled = settled + 1
    count_out(counts, channel, size)
    if outcome == "d" and record ~= "" then
      -- The newest sent state of a key is the one that repeats: older records of it go.
      local old = redis.call("HGETALL", states)
      for j = 1, #old, 2 do
        if cjson.decode(old[j + 1])["k"] == key then redis.call("HDEL", states, old[j]) end
      end
      redis.call("HSET", states, id, record)
      redis.call("SADD", state_channels, channel)
    end
  end
  if client == "1" then
    if outcome == "d" then
      redis.call("SET", idkey, "d", "PX", ttl)
    else
      redis.call("DEL", idkey)
    end
  end
end
return settled
"""
)


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
    scheduled: bytes = b""  # the cue's member of its channel's scheduled set, if it had one
    state: bytes = b""  # for a sent state cue that repeats: its record (see states.py)
    key: str = ""  # and its state key


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
            "ps": cue.persist,
        }
    )


def scheduled_member(cue: Cue) -> bytes:
    """A scheduled cue's member of its channel's scheduled set: what the channel views list."""
    if cue.not_before is None:
        return b""
    return orjson.dumps({"id": cue.id, "type": cue.type, "not_before": cue.not_before})


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
        persist=bool(obj.get("ps", False)),
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
        keys: list[str] = [CHANNELS]
        args: list[_Arg] = [*channel_max, *partition_max, IDEMPOTENCY_TTL_MS]
        for cue in cues:
            part = self.keys(cue.channel)
            keys += [
                part.stream,
                part.counts,
                part.idempotency(cue.channel, cue.id),
                part.entries,
                part.scheduled(cue.channel),
            ]
            not_before = "" if cue.not_before is None else repr(cue.not_before)
            args += [cue.channel, int(cue.client_id), len(cue.item), encode_cue(cue)]
            args += [cue.id, not_before, scheduled_member(cue)]
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
            keys = [part.stream, part.counts, part.entries, part.state_channels]
            args: list[_Arg] = [GROUP, IDEMPOTENCY_TTL_MS]
            for item in items:
                keys += [
                    part.idempotency(item.channel, item.cue_id),
                    part.scheduled(item.channel),
                    part.states(item.channel),
                ]
                args += [
                    item.entry_id,
                    item.channel,
                    item.size,
                    "d" if item.delivered else "x",
                    int(item.client_id),
                    item.cue_id,
                    item.scheduled,
                    item.state,
                    item.key,
                ]
            with self.probe.timed("settle"):
                await self._settle(keys=keys, args=args)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
