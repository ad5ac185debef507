"""What an owner writes back to Redis once IVS answered: settlements, the repeating state
records and receipts, in that order, by one writer task.

Settlements go first, so that a receipt never announces a cue Redis still holds as pending, and
a state record is changed only after the settlement that may have written it. Each kind is put
back if its write fails, and written again on the next round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.distributed.keys import RECEIPTS
from metadata_gateway.distributed.states import StateRecord, StateRecords
from metadata_gateway.distributed.store import CueStore, Settlement
from metadata_gateway.running.tasks import TaskRegistry

log = logging.getLogger(__name__)

RETRY_S = 0.5  # after a Redis error


class WriteBack:
    """Collects what the owner's sending decided, and writes it to Redis in the background."""

    def __init__(
        self,
        redis: Redis,
        store: CueStore,
        states: StateRecords,
        *,
        replica: str,
        tasks: TaskRegistry,
    ) -> None:
        self._redis = redis
        self._store = store
        self._states = states
        self._replica = replica
        self._tasks = tasks
        self._outbox: list[Settlement] = []
        self.settling: set[str] = set()  # entries settled here, not yet acknowledged in Redis
        self._stopped: dict[str, list[str]] = {}  # channel -> states that stopped repeating
        self._touched: dict[tuple[str, str], StateRecord] = {}  # repeats sent since last write
        self._receipts: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        # One writer: a flush returns once all before it landed. Held by a claim too, so that no
        # settlement lands between a claim and the queueing of what it found.
        self.writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<WriteBack outbox={len(self._outbox)} receipts={len(self._receipts)}>"

    def start(self) -> None:
        """Start the writer task."""
        self._task = self._tasks.spawn(self._run(), name="mg-settle")

    def settle(self, settlement: Settlement) -> None:
        """An entry was sent or dropped: acknowledge and delete it."""
        self.settling.add(settlement.entry_id)
        self._outbox.append(settlement)
        self._wake.set()

    def publish(self, message: dict[str, Any]) -> None:
        """Publish a receipt for every replica's WebSocket clients."""
        self._receipts.append({**message, "from": self._replica})
        self._wake.set()

    def repeated(self, record: StateRecord) -> None:
        """A state cue went out again: note when, for the next owner's schedule."""
        self._touched[(record.cue.channel, record.cue.id)] = record
        self._wake.set()

    def stop_repeating(self, channel: str, ids: list[str]) -> None:
        """These state cues of `channel` stopped repeating: their records go."""
        self._stopped.setdefault(channel, []).extend(ids)
        for cue_id in ids:
            self._touched.pop((channel, cue_id), None)
        self._wake.set()

    async def flush(self) -> None:
        """Write what waits now (before a partition changes hands, and before a cancel answers:
        the next owner must neither send again what was sent nor bring back what was cancelled)."""
        async with self.writing:
            await self._write()

    async def close(self) -> None:
        """Stop the writer task, then write what still waits, within 2 s."""
        await self._tasks.cancel(self._task)
        try:
            async with asyncio.timeout(2.0):
                await self.flush()
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("settlements not written at shutdown", extra={"error": str(exc)})

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                log.warning("settling failed; retrying", extra={"error": str(exc)})
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _write(self) -> None:
        # One pass over what waits now: a flush must end under steady sending, and what comes
        # later wakes the writer again.
        if self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                await self._store.settle(batch)
            except BaseException:
                self._outbox[:0] = batch
                raise
            self.settling.difference_update(item.entry_id for item in batch)
        if self._stopped:
            stopped, self._stopped = self._stopped, {}
            try:
                for channel, ids in stopped.items():
                    await self._states.forget(channel, ids)
            except BaseException:
                for channel, ids in stopped.items():  # forgetting twice is harmless
                    self._stopped.setdefault(channel, []).extend(ids)
                raise
        if self._touched:
            touched, self._touched = self._touched, {}
            try:
                await self._states.touch(list(touched.values()))
            except BaseException:
                for key, record in touched.items():
                    self._touched.setdefault(key, record)
                raise
        if self._receipts:
            messages, self._receipts = self._receipts, []
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(RECEIPTS, orjson.dumps(message))
                await pipe.execute()
