"""Receipts across replicas: the owner publishes each sent / dropped receipt, and every replica
(the owner too) hands them to its own `ReceiptRouter`.

The accepting replica acks only once Redis answered, and the owner may send the cue in the
meantime; a receipt that finds nobody waiting is therefore offered again a little later, so that
an ack still comes before its receipt."""

from __future__ import annotations

import asyncio
import logging

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.distributed.keys import RECEIPTS
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.telling.receipts import ReceiptRouter

log = logging.getLogger(__name__)

RECONNECT_S = 0.5
RETRY_AFTER_S = (0.05, 0.25, 1.0)  # offer a receipt nobody waited for again after these
MAX_RETRYING_IDS = 50_000  # bound on ids waiting to be offered again


class ReceiptRelay:
    """Subscribes to the receipts channel and routes other replicas' receipts locally."""

    def __init__(
        self, redis: Redis, router: ReceiptRouter, *, replica: str, tasks: TaskRegistry
    ) -> None:
        self._redis = redis
        self._tasks = tasks
        self._router = router
        self._replica = replica
        self._task: asyncio.Task[None] | None = None
        self._later: set[asyncio.TimerHandle] = set()
        self._retrying = 0
        self.relayed = 0

    def __repr__(self) -> str:
        return f"<ReceiptRelay relayed={self.relayed}>"

    def start(self) -> None:
        """Start listening."""
        self._task = self._tasks.spawn(self._run(), name="mg-receipts")

    async def close(self) -> None:
        """Stop listening."""
        await self._tasks.cancel(self._task)  # bounded: a Redis read can lose a cancellation
        for handle in self._later:
            handle.cancel()
        self._later.clear()

    async def _run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(RECEIPTS)
                    async for message in pubsub.listen():
                        self._route(message.get("data"))
            except (RedisError, OSError) as exc:
                log.warning("receipt relay disconnected", extra={"error": str(exc)})
                await asyncio.sleep(RECONNECT_S)

    def _route(self, data: object) -> None:
        if not isinstance(data, bytes | str):
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        message.pop("from", None)
        self.relayed += 1
        self._offer(message, 0)

    def _offer(self, message: dict[str, object], attempt: int) -> None:
        unknown = self._router.relay(message)
        if not unknown or attempt >= len(RETRY_AFTER_S):
            return
        if self._retrying + len(unknown) > MAX_RETRYING_IDS:
            return
        self._retrying += len(unknown)
        again = {**message, "ids": unknown}
        loop = asyncio.get_running_loop()

        def retry() -> None:
            self._later.discard(handle)
            self._retrying -= len(unknown)
            self._offer(again, attempt + 1)

        handle = loop.call_later(RETRY_AFTER_S[attempt], retry)
        self._later.add(handle)
