"""Owned partitions' cues into the local Gateway, and their fate back into Redis.

Per owned partition one reader task: first XAUTOCLAIM everything pending in the group (the
previous owner's cues, in flight at its end included), then XREADGROUP new entries, and now and
then XAUTOCLAIM entries left idle in another consumer's list. As a `DeliveryListener`, it settles
each sent or dropped cue (XACK + XDEL + counters) and publishes its receipt for the other
replicas.

A reader reads only while its partition's lease is confirmed (`may_read`) and stops by itself
once told to: an entry XREADGROUP hands to a replica that no longer owns the partition would sit
in that replica's pending list, out of the new owner's sight. Cancelling is not enough to stop it:
redis-py's asyncio client, on Python 3.11, sometimes completes a command normally in a task that
was cancelled during it, and the cancellation is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, CueState, Pending
from metadata_gateway.distributed.keys import GROUP, PartitionKeys, partition_of
from metadata_gateway.distributed.states import StateRecord, StateRecords
from metadata_gateway.distributed.store import (
    CueStore,
    Entry,
    Settlement,
    decode_entry,
    scheduled_member,
)
from metadata_gateway.distributed.writeback import WriteBack
from metadata_gateway.running.tasks import TaskRegistry

log = logging.getLogger(__name__)

READ_COUNT = 500  # entries per XREADGROUP / XAUTOCLAIM
READ_BLOCK_MS = 1000  # a reader wakes at least this often to see it should stop
RETRY_S = 0.5  # after a Redis error
UNCONFIRMED_WAIT_S = 0.1  # a reader whose lease is unconfirmed looks again after this
# Entries idle this long in another consumer's pending list were read by a replica that lost the
# partition before it could queue them (a stalled process); the owner takes them over.
RECLAIM_IDLE_MS = 5000
RECLAIM_EVERY_S = 5.0


@dataclass(slots=True, eq=False)
class _Reader:
    """One partition's reader task and the flag that tells it to stop."""

    partition: int
    stopped: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def _always(partition: int) -> bool:
    return True


class PartitionConsumer:
    """Feeds the local gateway from owned partitions, and settles what it sent or dropped."""

    def __init__(
        self,
        redis: Redis,
        store: CueStore,
        gateway: Gateway,
        *,
        replica: str,
        tasks: TaskRegistry,
        may_read: Callable[[int], bool] = _always,
    ) -> None:
        self._redis = redis
        self._tasks = tasks
        self._store = store
        self.states = StateRecords(redis, partitions=store.partitions, probe=store.probe)
        self._gateway = gateway
        self._replica = replica
        self.may_read = may_read  # whether a partition's lease is confirmed right now
        self._readers: dict[int, _Reader] = {}
        self._entries: dict[tuple[str, str], tuple[int, str]] = {}  # (channel, id) -> entry
        self.writer = WriteBack(redis, store, self.states, replica=replica, tasks=tasks)
        self.read = 0
        self.claimed = 0
        self.reclaimed = 0

    def __repr__(self) -> str:
        return (
            f"<PartitionConsumer owned={sorted(self._readers)} entries={len(self._entries)} "
            f"{self.writer!r}>"
        )

    @property
    def owned(self) -> set[int]:
        """Partitions being read."""
        return set(self._readers)

    def start(self) -> None:
        """Start the task that writes settlements, state records and receipts to Redis."""
        self.writer.start()

    def take(self, partition: int) -> None:
        """Start reading a partition this replica now owns."""
        if partition not in self._readers:
            reader = _Reader(partition)
            reader.task = self._tasks.spawn(self._read(reader), name=f"mg-read-p{partition}")
            self._readers[partition] = reader

    async def give_up(self, partition: int) -> list[Pending]:
        """Stop reading a partition and forget its queued cues (they stay pending in Redis)."""
        reader = self._readers.pop(partition, None)
        if reader is not None:
            await self._stop(reader)
        arns = [
            arn
            for arn in self._gateway.channels
            if partition_of(arn, self._store.partitions) == partition
        ]
        evicted = self._gateway.evict(arns)
        for pending in evicted:
            self._entries.pop((pending.cue.channel, pending.cue.id), None)
        return evicted

    def owns(self, channel_arn: str) -> bool:
        """Whether this replica reads the partition of `channel_arn` now."""
        return partition_of(channel_arn, self._store.partitions) in self._readers

    def evict_strays(self) -> None:
        """Forget cues of channels this replica no longer owns (a call that failed after its
        partition was given up puts its cues back)."""
        strays = [
            arn
            for arn, channel in self._gateway.channels.items()
            if (len(channel.queue) or channel.queue.repeating) and not self.owns(arn)
        ]
        if strays:
            for pending in self._gateway.evict(strays):
                self._entries.pop((pending.cue.channel, pending.cue.id), None)

    def in_flight(self, partition: int) -> bool:
        """Whether a call for a channel of this partition is on its way to IVS."""
        return any(
            c.in_flight is not None
            for arn, c in self._gateway.channels.items()
            if partition_of(arn, self._store.partitions) == partition
        )

    async def flush(self) -> None:
        """Write what waits now (see `WriteBack.flush`)."""
        await self.writer.flush()

    async def close(self) -> None:
        """Stop every reader, then write the settlements still waiting."""
        readers = list(self._readers.values())
        self._readers.clear()
        await asyncio.gather(*(self._stop(reader) for reader in readers))
        await self.writer.close()

    # ---- reading ------------------------------------------------------------------------

    async def _stop(self, reader: _Reader) -> None:
        reader.stopped = True  # ends it after its Redis call even if the cancellation is lost
        await self._tasks.cancel(reader.task)

    async def _read(self, reader: _Reader) -> None:
        partition = reader.partition
        stream = PartitionKeys(partition).stream
        # Go on repeating the previous owner's states, take over what it left pending (newer
        # states among it replace them), then read new entries.
        if not await self._restore_states(reader):
            return
        if not await self._claim(reader, stream, min_idle_ms=0):
            return
        loop = asyncio.get_running_loop()
        next_reclaim = loop.time() + RECLAIM_EVERY_S
        while not reader.stopped:
            if self._gateway.draining:
                await asyncio.sleep(READ_BLOCK_MS / 1000)
                continue
            if not self.may_read(partition):
                # Rare (Redis slow or away): the next renewal decides, a tick away at most.
                await asyncio.sleep(UNCONFIRMED_WAIT_S)
                continue
            if loop.time() >= next_reclaim:
                next_reclaim = loop.time() + RECLAIM_EVERY_S
                if not await self._strays_pending(reader, stream):
                    continue
                if not await self._claim(reader, stream, min_idle_ms=RECLAIM_IDLE_MS):
                    return
                continue
            try:
                answer: Any = await self._redis.xreadgroup(
                    GROUP, self._replica, {stream: ">"}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except (RedisError, OSError) as exc:
                await self._read_failed(partition, "read failed", exc)
                continue
            if reader.stopped:  # read after the stop: left pending for the next owner
                return
            for _, entries in answer or ():
                self.read += len(entries)
                self._feed(partition, entries)

    async def _restore_states(self, reader: _Reader) -> bool:
        """Repeat the state cues the partition's records hold; False once the reader stopped."""
        while not reader.stopped:
            try:
                records = await self.states.of_partition(
                    reader.partition, self._gateway.wall_clock()
                )
            except (RedisError, OSError) as exc:
                await self._read_failed(reader.partition, "loading states failed", exc)
                continue
            if reader.stopped:
                break
            for record in records:
                self._gateway.restore_repeating(
                    record.cue,
                    expires_wall=record.expires_wall,
                    last_sent_wall=record.last_sent_wall,
                )
            return True
        return False

    async def _strays_pending(self, reader: _Reader, stream: str) -> bool:
        """Whether this stream's pending entries include some this replica does not hold:
        another consumer's, or its own that never reached its queues (a read whose answer was
        lost with the connection). A long backlog leaves this replica's own queued entries
        idle for long, and claiming them again is work for nothing."""
        try:
            summary: Any = await self._redis.xpending(stream, GROUP)
        except (RedisError, OSError) as exc:
            await self._read_failed(reader.partition, "pending summary failed", exc)
            return False
        mine = 0
        for consumer in summary["consumers"] or ():
            if _text(consumer["name"]) != self._replica:
                return True
            mine = int(consumer["pending"])
        held = sum(1 for partition, _ in self._entries.values() if partition == reader.partition)
        return mine > held + len(self.writer.settling)

    async def _claim(self, reader: _Reader, stream: str, *, min_idle_ms: int) -> bool:
        """XAUTOCLAIM every entry pending at least `min_idle_ms` and queue it; False once the
        reader was stopped."""
        start = "0-0"
        while not reader.stopped:
            try:
                # No settlement may land between the claim and the queueing of what it found:
                # a cue sent meanwhile would be queued again once its settlement had left
                # `settling`, and sent twice.
                async with self.writer.writing:
                    claim: Any = await self._redis.xautoclaim(
                        stream, GROUP, self._replica, min_idle_ms, start_id=start, count=READ_COUNT
                    )
                    if reader.stopped:
                        break
                    start = _text(claim[0])
                    claimed = [e for e in claim[1] if e and e[1]]
                    self._feed(reader.partition, claimed)
            except (RedisError, OSError) as exc:
                await self._read_failed(reader.partition, "claim failed", exc)
                continue
            if min_idle_ms:
                self.reclaimed += len(claimed)
            else:
                self.claimed += len(claimed)
            if start == "0-0":
                return True
        return False

    async def _read_failed(self, partition: int, what: str, exc: Exception) -> None:
        log.warning(what, extra={"partition": partition, "error": str(exc)})
        if "NOGROUP" in str(exc):  # Redis came back empty: recreate the group
            with contextlib.suppress(RedisError, OSError):
                await self._store.create_group(partition)
        await asyncio.sleep(RETRY_S)

    def _feed(self, partition: int, raw: Sequence[Any]) -> None:
        for entry_id, fields in raw:
            try:
                entry = decode_entry(partition, entry_id, fields)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("unreadable entry", extra={"entry": str(entry_id), "error": str(exc)})
                continue
            self._enqueue(entry)

    def _enqueue(self, entry: Entry) -> None:
        cue = entry.cue
        key = (cue.channel, cue.id)
        if key in self._entries:  # read again after a change of owner: already queued here
            return
        if entry.entry_id in self.writer.settling:  # reclaimed while its settlement is on its way
            return
        self._entries[key] = (entry.partition, entry.entry_id)
        if cue.type == "state" and cue.key is not None:
            channel = self._gateway.channels.get(cue.channel)
            replaced = [] if channel is None else channel.queue.repeating
            # A newer state replaces the one repeating: it must not come back after a crash.
            self._stop_repeating(cue.channel, [p for p in replaced if p.cue.key == cue.key])
        self._gateway.enqueue_accepted(cue, accepted_wall=entry.accepted_wall)

    # ---- DeliveryListener ---------------------------------------------------------------

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        """Settle delivered cues and publish their receipt."""
        ids = self._settle(channel, cues, delivered=True)
        if ids:
            at = round(self._gateway.wall_clock(), 6)
            self.writer.publish({"op": "sent", "channel": channel, "ids": ids, "at": at})

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """Settle dropped cues, except at shutdown, when they stay for the next owner."""
        if reason is DropReason.SHUTDOWN:
            return
        self._stop_repeating(channel, [p for p in cues if p.state is CueState.REPEATING])
        ids = self._settle(channel, cues, delivered=False)
        if ids:
            self.writer.publish(
                {"op": "dropped", "channel": channel, "ids": ids, "reason": reason.value}
            )

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        """Note when each state repeat in a successful call went out."""
        if outcome is not Outcome.OK or not batch.repeats:
            return
        for pending in batch.repeats:
            self.writer.repeated(self._record(pending))

    def _record(self, pending: Pending) -> StateRecord:
        now, wall = self._gateway.now(), self._gateway.wall_clock()
        return StateRecord(pending.cue, wall + (pending.expires_at - now), wall)

    def _stop_repeating(self, channel: str, cues: Sequence[Pending]) -> None:
        if cues:
            self.writer.stop_repeating(channel, [p.cue.id for p in cues])

    def _settle(self, channel: str, cues: Sequence[Pending], *, delivered: bool) -> list[str]:
        ids = []
        for pending in cues:
            found = self._entries.pop((channel, pending.cue.id), None)
            if found is None:
                continue
            partition, entry_id = found
            cue = pending.cue
            ids.append(cue.id)
            repeats = delivered and pending.state is CueState.REPEATING
            self.writer.settle(
                Settlement(
                    partition,
                    entry_id,
                    channel,
                    cue.id,
                    pending.size,
                    delivered,
                    cue.client_id,
                    scheduled=scheduled_member(cue),
                    state=self._record(pending).encode() if repeats else b"",
                    key=cue.key or "",
                )
            )
        return ids


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
