"""Which replica sends which partitions: heartbeats, leases with a fencing epoch, rebalancing.

Every `TICK_S` a replica records its heartbeat (Redis time) in a ZSET and reads the live set.
Each partition's preferred owner is the live replica with the highest rendezvous hash, so every
replica computes the same split (about P / live each) and a join or a death moves only the
partitions that must move. A replica renews the leases it holds, releases the ones now preferred
elsewhere (after its calls in flight for them have ended), and acquires free leases it is
preferred for, raising the partition's epoch. A replica that cannot renew stops sending before
its leases can have expired: nobody else can acquire them earlier.

The heartbeat waits for nothing but Redis: a partition is handed over in a task of its own,
since waiting there for calls in flight (up to the IVS timeout) would let every other lease
expire meanwhile, and another replica would take partitions this one still reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from metadata_gateway.core.gateway import Gateway
from metadata_gateway.distributed.consumer import PartitionConsumer
from metadata_gateway.distributed.keys import REPLICAS, PartitionKeys, busy_key
from metadata_gateway.distributed.probe import RedisProbe
from metadata_gateway.distributed.views import FactsReporter
from metadata_gateway.running.tasks import TaskRegistry

log = logging.getLogger(__name__)

TICK_S = 0.5  # heartbeat and lease renewal period
LEASE_MS = 2000  # a dead owner's partitions move after at most this (plus one tick)
LIVE_MS = 2000  # a replica without a heartbeat for this long is gone
SELF_FENCE_S = LEASE_MS / 1000 * 0.6  # unconfirmed this long: stop sending before the lease ends
RELEASE_WAIT_S = 6.0  # longest wait for a released partition's calls in flight

# KEYS: lease. ARGV: replica, ms. Renew only a lease we still hold.
_RENEW = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease, epoch. ARGV: replica, ms. Returns the new epoch, or 0 if held by another.
_ACQUIRE = """
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return redis.call("INCR", KEYS[2])
end
return 0
"""
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
"""


def _rank(partition: int, replica: str) -> bytes:
    return hashlib.blake2b(f"{partition}/{replica}".encode(), digest_size=8).digest()


def preferred_owner(partition: int, live: Iterable[str]) -> str | None:
    """The live replica that ranks `partition` highest (rendezvous hashing)."""
    return max(live, key=lambda replica: _rank(partition, replica), default=None)


def assignment(partitions: int, live: Sequence[str]) -> dict[int, str]:
    """Every partition's owner: each replica takes floor or ceil of P / live, partitions going
    to the replica that ranks them highest among those with room. The same in every replica,
    and a join or a death moves few partitions."""
    if not live:
        return {}
    share, extra = divmod(partitions, len(live))
    room = {r: share + (1 if i < extra else 0) for i, r in enumerate(sorted(live))}
    owners: dict[int, str] = {}
    for partition in range(partitions):
        for replica in sorted(live, key=lambda r: _rank(partition, r), reverse=True):
            if room[replica]:
                room[replica] -= 1
                owners[partition] = replica
                break
    return owners


def fair_limit(account_rate: int, mine: int, total: int) -> int:
    """This replica's share of an account's calls: in proportion to its busy channels."""
    if mine == 0:  # idle here: a share as if one channel were about to get busy
        mine, total = 1, total + 1
    if mine >= total:
        return account_rate
    return max(1, math.floor(account_rate * mine / total))


class Ownership:
    """Keeps this replica's set of owned partitions right, and its account shares fair."""

    def __init__(
        self,
        redis: Redis,
        consumer: PartitionConsumer,
        gateway: Gateway,
        *,
        replica: str,
        partitions: int,
        clock: Callable[[], float],
        tasks: TaskRegistry,
        facts: FactsReporter,
        probe: RedisProbe | None = None,
    ) -> None:
        self._redis = redis
        self._facts = facts
        self._tasks = tasks
        self._probe = probe or RedisProbe()
        self._consumer = consumer
        self._gateway = gateway
        self.replica = replica
        self._partitions = partitions
        self._clock = clock
        self._renew = redis.register_script(_RENEW)
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self.epochs: dict[int, int] = {}  # owned partition -> its fencing epoch
        self.confirmed: dict[int, float] = {}  # partition -> when Redis last renewed its lease
        self.live: list[str] = []
        self.last_ok: float | None = None  # when Redis last confirmed our heartbeat
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._handovers: dict[int, asyncio.Task[None]] = {}  # partitions being given up
        self._releasing: set[int] = set()  # of those, the ones whose lease we still hold
        self.handovers = 0  # partitions given up, released or lost
        self.lease_losses = 0  # leases found held by another, or expired, at renewal

    def __repr__(self) -> str:
        return (
            f"<Ownership {self.replica} owned={sorted(self.epochs)} "
            f"handing_over={sorted(self._handovers)} live={len(self.live)}>"
        )

    def start(self) -> None:
        """Start the heartbeat loop."""
        self._task = self._tasks.spawn(self._run(), name="mg-ownership")

    def healthy(self) -> bool:
        """Whether Redis confirmed our heartbeat recently."""
        return self.last_ok is not None and self._clock() - self.last_ok < SELF_FENCE_S

    def may_read(self, partition: int) -> bool:
        """Whether this replica owns `partition` and Redis renewed its lease recently enough
        that no other replica can hold it yet."""
        at = self.confirmed.get(partition)
        return partition in self.epochs and at is not None and self._clock() - at < SELF_FENCE_S

    async def close(self) -> None:
        """Stop, hand every partition back (its cues stay in Redis), and leave the live set."""
        self._closing = True
        await self._tasks.cancel(self._task)
        for partition in list(self.epochs):
            self._hand_over(partition, release=True)
        if self._handovers:
            await asyncio.wait(list(self._handovers.values()))
        try:
            await self._redis.zrem(REPLICAS, self.replica)
        except (RedisError, OSError) as exc:
            log.warning("could not leave the replica set", extra={"error": str(exc)})

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self.tick()
                self.error = None
            except (RedisError, OSError) as exc:
                self.error = str(exc) or type(exc).__name__
                log.warning("ownership tick failed", extra={"error": self.error})
            if not self.healthy() and self.epochs:
                log.warning("lost Redis: stopping sending", extra={"owned": sorted(self.epochs)})
                for partition in list(self.epochs):
                    self._hand_over(partition, release=False)
            await asyncio.sleep(TICK_S)

    async def tick(self) -> None:
        """One round: heartbeat, renew, rebalance, share accounts fairly."""
        started = self._clock()
        self._consumer.evict_strays()
        with self._probe.timed("heartbeat"):
            seconds, micros = await self._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(REPLICAS, {self.replica: now_ms})
            pipe.zremrangebyscore(REPLICAS, "-inf", now_ms - LIVE_MS)
            pipe.zrange(REPLICAS, 0, -1)
            *_, live = await pipe.execute()
        self.live = sorted(_text(r) for r in live)
        self.last_ok = started
        # A partition being released keeps its lease until its calls in flight have ended.
        for partition in [*self.epochs, *sorted(self._releasing)]:
            if await self._renew(
                keys=[PartitionKeys(partition).lease], args=[self.replica, LEASE_MS]
            ):
                self.confirmed[partition] = started
            elif partition in self.epochs:
                log.warning("lease lost", extra={"partition": partition})
                self.lease_losses += 1
                self._hand_over(partition, release=False)
        owners = assignment(self._partitions, self.live)
        wanted = {p for p, owner in owners.items() if owner == self.replica}
        for partition in sorted(set(self.epochs) - wanted):
            self._hand_over(partition, release=True)
        for partition in sorted(wanted - set(self.epochs) - set(self._handovers)):
            keys = PartitionKeys(partition)
            epoch = await self._acquire(
                keys=[keys.lease, keys.epoch], args=[self.replica, LEASE_MS]
            )
            if epoch:
                # Settlements still waiting must reach Redis before we claim what is pending.
                await self._consumer.flush()
                self.epochs[partition] = int(epoch)
                self.confirmed[partition] = started
                self._consumer.take(partition)
                log.info("partition taken", extra={"partition": partition, "epoch": int(epoch)})
        await self._share_accounts()
        await self._facts.report(self._gateway.channels)

    def _hand_over(self, partition: int, *, release: bool) -> None:
        """Stop owning `partition` now, and give it up in a task of its own."""
        self.epochs.pop(partition, None)
        if partition in self._handovers:
            return
        self.handovers += 1
        if release:
            self._releasing.add(partition)
        task = self._tasks.spawn(
            self._give_up(partition, release=release), name=f"mg-handover-p{partition}"
        )
        self._handovers[partition] = task
        task.add_done_callback(lambda done: self._handed_over(partition, done))

    def _handed_over(self, partition: int, task: asyncio.Task[None]) -> None:
        self._handovers.pop(partition, None)
        self._releasing.discard(partition)
        self.confirmed.pop(partition, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("hand-over failed", extra={"partition": partition}, exc_info=task.exception())

    async def _give_up(self, partition: int, *, release: bool) -> None:
        evicted = await self._consumer.give_up(partition)
        if release:
            # Let calls in flight end first, so the next owner does not send their cues again.
            deadline = self._clock() + RELEASE_WAIT_S
            # No event marks a channel's call ending; a bounded poll during a rare hand-over.
            while self._consumer.in_flight(partition) and self._clock() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            evicted += await self._consumer.give_up(partition)  # cues a failed call put back
            try:
                await self._consumer.flush()
                await self._release(keys=[PartitionKeys(partition).lease], args=[self.replica])
            except (RedisError, OSError) as exc:
                log.warning("lease not released", extra={"partition": partition, "error": str(exc)})
        log.info(
            "partition given up",
            extra={"partition": partition, "cues_left_in_redis": len(evicted), "released": release},
        )

    async def _share_accounts(self) -> None:
        """Publish this replica's busy channels per account; set the local account limits."""
        busy: dict[tuple[str, str], int] = {}
        for channel in self._gateway.channels.values():
            if len(channel.queue) or channel.in_flight is not None:
                budget = channel.arn.budget
                busy[budget] = busy.get(budget, 0) + 1
        budgets = list(self._gateway.schedulers)
        if not budgets:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for budget in budgets:
                key = busy_key(budget)
                pipe.hset(key, self.replica, busy.get(budget, 0))
                pipe.pexpire(key, LIVE_MS * 2)
                pipe.hgetall(key)
            answers = await pipe.execute()
        live = set(self.live)
        rate = self._gateway.settings.account_rate
        for index, budget in enumerate(budgets):
            counts = answers[index * 3 + 2]
            total = sum(int(v) for k, v in counts.items() if _text(k) in live)
            limit = fair_limit(rate, busy.get(budget, 0), total)
            self._gateway.schedulers[budget].limiter.limit = limit


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
