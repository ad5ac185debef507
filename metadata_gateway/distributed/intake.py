"""The durable accept: a replica answers 202 only once Redis holds the cues."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from metadata_gateway.backpressure import drain_wait
from metadata_gateway.cues import Cue
from metadata_gateway.distributed.store import CueStore, Full
from metadata_gateway.errors import CueError
from metadata_gateway.gateway import Accepted, Gateway

REDIS_RETRY_AFTER_S = 2.0  # long enough for a Sentinel failover to be noticed


class RedisIntake:
    """An `Intake` that keeps cues in their partitions' Redis streams."""

    def __init__(
        self, gateway: Gateway, store: CueStore, *, unavailable: Callable[[], str | None]
    ) -> None:
        self._gateway = gateway
        self._store = store
        self._unavailable = unavailable
        settings = gateway.settings
        self._channel_max = (settings.channel_max_cues, settings.channel_max_bytes)
        # The process bound becomes a bound for the deployment, split across partitions.
        self._partition_max = (
            math.ceil(settings.total_max_cues / store.partitions),
            math.ceil(settings.total_max_bytes / store.partitions),
        )

    def __repr__(self) -> str:
        return f"<RedisIntake {self._store!r}>"

    def unavailable(self) -> str | None:
        """Why no cue can be kept now, or None."""
        return self._unavailable()

    async def submit(
        self,
        objs: Sequence[object],
        *,
        batch: bool = False,
        authorize: Callable[[Sequence[Cue]], None] | None = None,
    ) -> list[Accepted]:
        """Validate and authorize here, then keep all cues in Redis atomically, or none."""
        cues = self._gateway.prepare(objs, batch=batch, authorize=authorize)
        reason = self._unavailable()
        if reason is not None:
            raise _redis_down(reason)
        try:
            answer = await self._store.accept(
                cues, channel_max=self._channel_max, partition_max=self._partition_max
            )
        except (RedisError, OSError) as exc:
            raise _redis_down(str(exc) or type(exc).__name__) from None
        if isinstance(answer, Full):
            raise self._full(answer, cues)
        accepted = []
        for cue, status in zip(cues, answer, strict=True):
            if status == "q":
                accepted.append(Accepted(cue.id, cue.channel, "queued", cue.type))
            else:
                delivered = status == "dd"
                accepted.append(Accepted(cue.id, cue.channel, "duplicate", cue.type, delivered))
        return accepted

    def _full(self, full: Full, cues: Sequence[Cue]) -> CueError:
        settings = self._gateway.settings
        average = full.bytes / full.cues if full.cues else 100.0
        if full.scope == "channel":
            size = sum(len(c.item) for c in cues if c.channel == full.channel)
            count = sum(1 for c in cues if c.channel == full.channel)
            wait = drain_wait(
                excess_cues=full.cues + count - settings.channel_max_cues,
                excess_bytes=full.bytes + size - settings.channel_max_bytes,
                calls_per_s=settings.channel_rate,
                average_item_bytes=average,
            )
            return CueError(
                "queue_full",
                f"channel {full.channel} has {full.cues} cues waiting, its bound; "
                "slow down and retry after the time given",
                status=429,
                retry_after=wait,
                scope="channel",
                channel=full.channel,
            )
        wait = drain_wait(
            excess_cues=len(cues),
            excess_bytes=sum(len(c.item) for c in cues),
            calls_per_s=settings.account_rate,
            average_item_bytes=average,
        )
        return CueError(
            "queue_full",
            "the gateway holds as many cues as it may; slow down",
            status=429,
            retry_after=wait,
            scope="process",
        )


def _redis_down(reason: str) -> CueError:
    return CueError(
        "unavailable",
        f"cues cannot be stored durably now (Redis: {reason}); retry after the time given",
        status=503,
        retry_after=REDIS_RETRY_AFTER_S,
    )
