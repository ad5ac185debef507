"""Requests from one replica to another (the owner of a channel), over Redis lists.

A request is pushed on the asked replica's list, which its server task pops (BLPOP); the answer
is pushed on a list of the request's own, which the asking replica pops with a timeout. Both
lists expire by themselves, so a request to a replica that died is gone a few seconds later, and
the asking side answers that the owner did not reply.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.distributed.keys import answer, asks
from metadata_gateway.running.tasks import TaskRegistry

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 2.0  # below the Redis client's 3 s socket timeout
SERVE_BLOCK_S = 1.0  # the server wakes at least this often to see it should stop
LIST_TTL_MS = 5000  # a request or answer nobody took is gone after this
RETRY_S = 0.5  # after a Redis error

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(slots=True, eq=False)
class _Server:
    stopped: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ReplicaRequests:
    """Asks other replicas, and answers what they ask this one with `handler`."""

    def __init__(
        self, redis: Redis, *, replica: str, tasks: TaskRegistry, handler: Handler
    ) -> None:
        self._redis = redis
        self.replica = replica
        self._tasks = tasks
        self._handler = handler
        self._ids = itertools.count()
        self._token = secrets.token_hex(4)
        self._server = _Server()
        self.served = 0

    def __repr__(self) -> str:
        return f"<ReplicaRequests {self.replica} served={self.served}>"

    def start(self) -> None:
        """Start answering requests."""
        self._server.task = self._tasks.spawn(self._serve(self._server), name="mg-requests")

    async def close(self) -> None:
        """Stop answering (a request still on the list times out at its asker)."""
        # A flag as well: a BLPOP may finish normally in a task whose cancellation it lost.
        self._server.stopped = True
        await self._tasks.cancel(self._server.task)

    async def ask(self, replica: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """`replica`'s answer to `request`, or None if it gave none in time (gone, or busy)."""
        if replica == self.replica:
            return await self._handler(request)
        reply_to = f"{self.replica}:{self._token}:{next(self._ids)}"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(asks(replica), orjson.dumps({**request, "reply_to": reply_to}))
            pipe.pexpire(asks(replica), LIST_TTL_MS)
            await pipe.execute()
        popped: Any = await self._redis.blpop([answer(reply_to)], timeout=ANSWER_TIMEOUT_S)
        if popped is None:
            return None
        body: dict[str, Any] = orjson.loads(popped[1])
        return body

    async def _serve(self, server: _Server) -> None:
        key = asks(self.replica)
        while not server.stopped:
            try:
                popped: Any = await self._redis.blpop([key], timeout=SERVE_BLOCK_S)
            except (RedisError, OSError) as exc:
                log.warning("request list unreachable", extra={"error": str(exc)})
                await asyncio.sleep(RETRY_S)
                continue
            if popped is None:
                continue
            try:
                request = orjson.loads(popped[1])
                reply_to = str(request.pop("reply_to"))
            except (orjson.JSONDecodeError, KeyError, AttributeError) as exc:
                log.error("unreadable request", extra={"error": str(exc)})
                continue
            body = await self._handler(request)
            self.served += 1
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.rpush(answer(reply_to), orjson.dumps(body))
                    pipe.pexpire(answer(reply_to), LIST_TTL_MS)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("answer not sent", extra={"error": str(exc)})
