"""Distributed mode's parts, opened and closed together around one local Gateway."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable

from redis.exceptions import RedisError

from metadata_gateway.config import Settings
from metadata_gateway.core.cues import ID_PREFIXES, IdFactory, id_prefix
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.distributed.asking import ReplicaRequests
from metadata_gateway.distributed.budget import RedisCallGate
from metadata_gateway.distributed.cancelling import Cancels
from metadata_gateway.distributed.connect import connect
from metadata_gateway.distributed.consumer import PartitionConsumer
from metadata_gateway.distributed.intake import RedisIntake
from metadata_gateway.distributed.keys import ID_PREFIX
from metadata_gateway.distributed.ownership import Ownership
from metadata_gateway.distributed.probe import OPERATIONS, RedisProbe
from metadata_gateway.distributed.receipts import ReceiptRelay
from metadata_gateway.distributed.store import CueStore
from metadata_gateway.distributed.views import ChannelViews, FactsReporter
from metadata_gateway.intake.local import LocalIntake
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.telling.metrics import Metrics
from metadata_gateway.telling.receipts import ReceiptRouter

log = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 3.0  # above XREADGROUP's 1 s block; a hung Redis fails requests after this
CONNECT_TIMEOUT_S = 1.0
# Every call in flight holds a connection for its budget's acquire or release, up to an
# account's 155 at once after a window frees, beside the readers' blocking reads and the
# accepts: redis-py's default pool of 100 runs out, and fails commands at once ("Too many
# connections"), a lost release then holding a phantom call in the shared windows until its
# horizon. Redis itself takes 10,000 clients by default.
MAX_CONNECTIONS = 1_000
# The local limiters run this much stricter than the shared ones, so that Redis (whose clock
# sees a call's end a round trip late) seldom has to refuse what the local scheduler chose.
LOCAL_EXTRA_MARGIN_S = 0.003


class DistributedRuntime:
    """Redis clients, the call gate, and (once attached) intake, consumer, ownership, relay."""

    def __init__(self, settings: Settings, *, replica: str | None = None) -> None:
        if settings.redis_url is None:
            raise ValueError("distributed mode needs redis_url")
        self.settings = settings
        self.replica = (
            replica or settings.replica_id or f"{socket.gethostname()}-{secrets.token_hex(3)}"
        )
        self.redis = connect(
            settings.redis_url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            max_connections=MAX_CONNECTIONS,
        )
        # Pub/sub waits for messages without end: a connection of its own, no read timeout.
        self._pubsub_redis = connect(settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        self.probe = RedisProbe()
        self.gate = RedisCallGate(
            self.redis,
            replica=self.replica,
            channel_rate=settings.channel_rate,
            account_rate=settings.account_rate,
            ivs_timeout=settings.ivs_timeout,
            margin=settings.window_margin,
            partitions=settings.redis_partitions,
            probe=self.probe,
        )
        self.store = CueStore(
            self.redis,
            partitions=settings.redis_partitions,
            wait_replicas=settings.redis_wait_replicas,
            probe=self.probe,
        )
        # Ids as short as a single process's, unique across replicas: the random prefix is
        # replaced by this replica's number from Redis before any cue can be kept.
        self.new_id = IdFactory()
        self.intake: RedisIntake | None = None
        self.consumer: PartitionConsumer | None = None
        self.ownership: Ownership | None = None
        self.relay: ReceiptRelay | None = None
        self.requests: ReplicaRequests | None = None
        self._views: ChannelViews | None = None
        self._groups_ready = False
        self._groups_task: asyncio.Task[None] | None = None
        self._tasks: TaskRegistry | None = None  # the process's, once started

    def __repr__(self) -> str:
        return f"<DistributedRuntime {self.replica} {self.ownership!r} {self.gate!r}>"

    def report_to(self, metrics: Metrics) -> None:
        """Export this replica's ownership and Redis figures through `metrics`."""
        metrics.watch_replica(
            partitions=self.store.partitions,
            owned=lambda: 0 if self.ownership is None else len(self.ownership.epochs),
            handovers=lambda: 0 if self.ownership is None else self.ownership.handovers,
            lease_losses=lambda: 0 if self.ownership is None else self.ownership.lease_losses,
            redis_errors=lambda: self.probe.errors,
            operations=OPERATIONS,
        )
        self.probe.observe = metrics.redis_round_trip

    def local_settings(self) -> Settings:
        """The settings of the local Gateway: stricter local windows than the shared ones, and
        no start-up hold (the shared windows in Redis remember what earlier processes sent)."""
        return self.settings.with_changes(
            window_margin=self.settings.window_margin + LOCAL_EXTRA_MARGIN_S, startup_hold=0.0
        )

    def unavailable(self) -> str | None:
        """Why this replica cannot keep cues now (readiness fails, cues get 503)."""
        ownership = self.ownership
        if ownership is None or not self._groups_ready:
            return "not connected to Redis yet"
        if not ownership.healthy():
            return f"Redis unreachable: {ownership.error or 'no answer'}"
        return None

    async def start(
        self,
        gateway: Gateway,
        router: ReceiptRouter,
        *,
        tasks: TaskRegistry,
        clock: Callable[[], float],
    ) -> None:
        """Attach to the local gateway and start consuming, heartbeating and relaying, each
        task owned by `tasks`; `clock` is the process's one clock."""
        self.consumer = PartitionConsumer(
            self.redis, self.store, gateway, replica=self.replica, tasks=tasks
        )
        self._tasks = tasks
        gateway.listeners.append(self.consumer)
        # Receipts come back through Redis, the owner's own too, so that each can wait for its
        # ack however the accept and the send raced (see receipts.py).
        if router in gateway.listeners:
            gateway.listeners.remove(router)
        self.gate.owns = self.consumer.owns
        partitions = self.store.partitions
        cancels = Cancels(
            self.redis,
            gateway,
            self.consumer,
            partitions=partitions,
            probe=self.probe,
            publish=self.consumer.writer.publish,
        )
        self.requests = ReplicaRequests(
            self.redis, replica=self.replica, tasks=tasks, handler=cancels.answer
        )
        cancels.requests = self.requests
        self.ownership = Ownership(
            self.redis,
            self.consumer,
            gateway,
            replica=self.replica,
            partitions=self.store.partitions,
            clock=clock,
            tasks=tasks,
            probe=self.probe,
            facts=FactsReporter(self.redis, partitions=partitions, owns=self.consumer.owns),
        )
        self.consumer.may_read = self.ownership.may_read
        views = self._views = ChannelViews(
            self.redis,
            partitions=partitions,
            aliases=gateway.aliases,
            wall_clock=gateway.wall_clock,
            probe=self.probe,
        )
        self.intake = RedisIntake(
            LocalIntake(gateway),
            self.store,
            cancels=cancels,
            views=views,
            unavailable=self.unavailable,
            gate=self.gate,
        )
        self.relay = ReceiptRelay(self._pubsub_redis, router, replica=self.replica, tasks=tasks)
        try:
            await self._prepare_redis()
        except (RedisError, OSError) as exc:
            log.warning("Redis not reachable at start", extra={"error": str(exc)})
        self.consumer.start()
        self.requests.start()
        self.relay.start()
        self.ownership.start()
        self._groups_task = (
            None
            if self._groups_ready
            else tasks.spawn(self._create_groups_later(), name="mg-create-groups")
        )
        log.info(
            "distributed mode",
            extra={"replica": self.replica, "partitions": self.store.partitions},
        )

    async def _prepare_redis(self) -> None:
        """Create the streams' groups, number this replica's cue ids, and list the configured
        channels first in views; until all is done, no cue is kept (`unavailable`), so no id of
        the random prefix reaches Redis."""
        await self.store.create_groups()
        async with self.redis.pipeline(transaction=False) as pipe:
            # Numbering starts anywhere: a Redis that lost its data does not hand out again
            # the numbers of the replicas still running.
            pipe.set(ID_PREFIX, secrets.randbelow(ID_PREFIXES), nx=True)
            pipe.incr(ID_PREFIX)
            _, number = await pipe.execute()
        self.new_id.prefix = id_prefix(int(number))
        assert self._views is not None
        await self._views.register(self.settings.channels.values())
        self._groups_ready = True

    async def _create_groups_later(self) -> None:
        while not self._groups_ready:
            await asyncio.sleep(1.0)
            try:
                await self._prepare_redis()
            except (RedisError, OSError) as exc:
                log.warning("Redis still not reachable", extra={"error": str(exc)})

    async def hand_back(self) -> None:
        """Stop reading and hand the partitions back (queued cues stay in Redis), settled."""
        if self._groups_task is not None and self._tasks is not None:
            await self._tasks.cancel(self._groups_task)
        if self.requests is not None:
            await self.requests.close()
        if self.ownership is not None:
            await self.ownership.close()
        if self.consumer is not None:
            await self.consumer.close()

    async def close(self) -> None:
        """Stop relaying receipts and disconnect from Redis (after `hand_back`)."""
        if self.relay is not None:
            await self.relay.close()
        await self.redis.aclose()
        await self._pubsub_redis.aclose()
