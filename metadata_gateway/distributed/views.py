"""Channel views of the whole deployment, the same whichever replica answers.

Everything a view shows is read from Redis: pending cues and bytes from the partition's counts
(every cue accepted and not yet sent or dropped, read by an owner or not), scheduled cues from the
channel's scheduled set (those whose not_before is still ahead), repeating cues from the state
records, the owner from the partition's lease, and liveness, last error, calls and cues sent from
the facts each owner reports every heartbeat (`FactsReporter`). The channel list is the registry
of channels in the order their first cue was accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from metadata_gateway.core.channel import Channel
from metadata_gateway.distributed.keys import CHANNELS, PartitionKeys, partition_of
from metadata_gateway.distributed.probe import RedisProbe
from metadata_gateway.distributed.states import decode_record
from metadata_gateway.intake.seam import ChannelView

_Facts = tuple[bool | None, str | None, int, int]  # live, last error, calls, cues delivered
_COMMANDS = 5  # per channel, in `_read`
_NOTHING: _Facts = (None, None, 0, 0)  # what a channel not yet reported has told


class ChannelViews:
    """Reads channel views from Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        partitions: int,
        aliases: Mapping[str, str],
        wall_clock: Callable[[], float],
        probe: RedisProbe,
    ) -> None:
        self._redis = redis
        self._partitions = partitions
        self._aliases = aliases
        self._wall_clock = wall_clock
        self._probe = probe

    def __repr__(self) -> str:
        return f"<ChannelViews partitions={self._partitions}>"

    async def register(self, configured: Iterable[str]) -> None:
        """Put the configured channels first in the list, in their order, as one process does."""
        arns = list(configured)
        if arns:
            # LT: a channel met earlier moves to the front; one already there keeps its place.
            await self._redis.zadd(CHANNELS, {arn: i for i, arn in enumerate(arns)}, lt=True)

    async def one(self, channel: str) -> ChannelView:
        """One channel, with its scheduled and repeating cues (zeros for one never met)."""
        return (await self._read([channel], detail=True))[0]

    async def page(self, start: int, limit: int) -> tuple[list[ChannelView], int | None]:
        """A page of the deployment's channels, in the order they were first met."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(CHANNELS, start, start + limit - 1)
            pipe.zcard(CHANNELS)
            members, total = await pipe.execute()
        channels = [_text(m) for m in members]
        following = start + limit if start + limit < int(total) else None
        return await self._read(channels, detail=False), following

    async def _read(self, channels: Sequence[str], *, detail: bool) -> list[ChannelView]:
        wall = self._wall_clock()
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                part = PartitionKeys(partition_of(channel, self._partitions))
                pipe.hmget(part.counts, f"n:{channel}", f"b:{channel}")
                pipe.zrangebyscore(part.scheduled(channel), f"({wall!r}", math.inf)
                pipe.hvals(part.states(channel))
                pipe.hmget(part.facts, *(f"{f}:{channel}" for f in "lerd"))
                pipe.get(part.lease)
            with self._probe.timed("view"):
                answers = await pipe.execute()
        views = []
        for index, channel in enumerate(channels):
            counts, scheduled, states, facts, owner = answers[
                index * _COMMANDS : (index + 1) * _COMMANDS
            ]
            cues = int(counts[0] or 0)
            held = [orjson.loads(member) for member in scheduled]
            repeating = [r for r in map(decode_record, states) if r.expires_wall > wall]
            live, error, calls, delivered = _facts(facts)
            views.append(
                ChannelView(
                    channel=channel,
                    alias=self._aliases.get(channel),
                    pending=max(0, cues - len(held)),
                    pending_bytes=int(counts[1] or 0),
                    scheduled=len(held),
                    repeating=len(repeating),
                    live=live,
                    sent_requests=calls,
                    delivered_cues=delivered,
                    last_error=error,
                    scheduled_cues=tuple(held) if detail else (),
                    repeating_cues=tuple(r.as_json() for r in repeating) if detail else (),
                    owner=None if owner is None else _text(owner),
                )
            )
        return views


class FactsReporter:
    """Reports what this replica knows of the channels it owns, for every replica's views."""

    def __init__(self, redis: Redis, *, partitions: int, owns: Callable[[str], bool]) -> None:
        self._redis = redis
        self._partitions = partitions
        self._owns = owns
        self._reported: dict[str, _Facts] = {}  # channel -> the facts last reported from here

    def __repr__(self) -> str:
        return f"<FactsReporter reported={len(self._reported)}>"

    async def report(self, channels: Mapping[str, Channel]) -> None:
        """Write what changed since the last report. Calls and cues go as increments, whether
        the channel is still owned or not (a call may end after its partition moved), so that
        owners one after another add up; liveness and last error only while owned, so that a
        former owner never overwrites what the current one learnt."""
        async with self._redis.pipeline(transaction=False) as pipe:
            changes = 0
            for arn, channel in channels.items():
                before = self._reported.get(arn, _NOTHING)
                now = _facts_of(channel)
                if now == before:
                    continue
                if not self._owns(arn):
                    now = (before[0], before[1], now[2], now[3])
                changes += self._write(pipe, arn, before, now)
                self._reported[arn] = now
            if changes:
                await pipe.execute()

    def _write(self, pipe: Any, arn: str, before: _Facts, now: _Facts) -> int:
        facts = PartitionKeys(partition_of(arn, self._partitions)).facts
        writes = 0
        for field, index in (("l", 0), ("e", 1)):
            value = now[index]
            if value != before[index]:
                if value is None:
                    pipe.hdel(facts, f"{field}:{arn}")
                else:
                    pipe.hset(facts, f"{field}:{arn}", int(value) if field == "l" else value)
                writes += 1
        for field, added in (("r", now[2] - before[2]), ("d", now[3] - before[3])):
            if added:
                pipe.hincrby(facts, f"{field}:{arn}", added)
                writes += 1
        return writes


def _facts_of(channel: Channel) -> _Facts:
    return (channel.live, channel.last_error, channel.sent_requests, channel.delivered_cues)


def _facts(values: Sequence[Any]) -> _Facts:
    live, error, calls, delivered = values
    return (
        None if live is None else live in (b"1", "1"),
        None if error is None else _text(error),
        int(calls or 0),
        int(delivered or 0),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
