"""The intake of a replica: a 202 only once Redis holds the cues; cancels and channel views that
answer for the whole deployment (see docs/scaling.md). `Retry-After` while a connection waits for
room is the one estimate that stays local: it looks at the channels this replica sends."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence

from redis.exceptions import RedisError

from metadata_gateway.core.admission import (
    ChannelLoad,
    channel_full,
    channel_wait,
    drain_wait,
    process_full,
    share_of_calls,
)
from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.cues import Cue
from metadata_gateway.core.errors import CueError
from metadata_gateway.distributed.budget import RedisCallGate
from metadata_gateway.distributed.cancelling import Cancels
from metadata_gateway.distributed.store import CueStore, Full
from metadata_gateway.distributed.views import ChannelViews
from metadata_gateway.intake.local import LocalIntake
from metadata_gateway.intake.seam import Accepted, Cancelled, ChannelView

REDIS_RETRY_AFTER_S = 2.0  # long enough for a Sentinel failover to be noticed


class RedisIntake:
    """An `Intake` that keeps cues in their partitions' Redis streams."""

    def __init__(
        self,
        local: LocalIntake,
        store: CueStore,
        *,
        cancels: Cancels,
        views: ChannelViews,
        unavailable: Callable[[], str | None],
        gate: RedisCallGate,
    ) -> None:
        self._local = local
        self._store = store
        self._cancels = cancels
        self._views = views
        self._unavailable = unavailable
        self._gate = gate  # the shared call windows: when a full channel sends next
        settings = local.gateway.settings
        self._settings = settings
        self._channel_max = (settings.channel_max_cues, settings.channel_max_bytes)
        # The process bound becomes a bound for the deployment, split across partitions.
        self._partition_max = (
            math.ceil(settings.total_max_cues / store.partitions),
            math.ceil(settings.total_max_bytes / store.partitions),
        )

    def __repr__(self) -> str:
        return f"<RedisIntake {self._store!r}>"

    def ensure_open(self) -> None:
        """Refuse while this replica drains."""
        self._local.ensure_open()

    def unavailable(self) -> str | None:
        """Why no cue can be kept now, or None."""
        return self._unavailable()

    def health(self) -> dict[str, object]:
        """The local health (ready, degraded, draining)."""
        return self._local.health()

    async def keep(self, cues: Sequence[Cue]) -> list[Accepted]:
        """Keep all cues in Redis atomically, or none."""
        self._ensure_available()
        try:
            answer = await self._store.accept(
                cues, channel_max=self._channel_max, partition_max=self._partition_max
            )
        except (RedisError, OSError) as exc:
            raise _redis_down(str(exc) or type(exc).__name__) from None
        if isinstance(answer, Full):
            raise await self._full(answer, cues)
        accepted = []
        for cue, status in zip(cues, answer, strict=True):
            if status == "q":
                accepted.append(Accepted(cue.id, cue.channel, "queued", cue.type))
            else:
                delivered = status == "dd"
                accepted.append(Accepted(cue.id, cue.channel, "duplicate", cue.type, delivered))
        return accepted

    async def cancel(self, channel: str, cue_id: str) -> Cancelled:
        """Cancel a cue wherever it stands: in Redis, or at the replica that owns its channel."""
        self._ensure_available()
        try:
            return await self._cancels.cancel(channel, cue_id)
        except (RedisError, OSError) as exc:
            raise _redis_down(str(exc) or type(exc).__name__) from None

    def room_wait(self, keys: Iterable[tuple[str, str]], excess: int) -> float:
        """Seconds until `excess` of these cues have left the queues of this replica."""
        return self._local.room_wait(keys, excess)

    async def channel(self, channel: str) -> ChannelView:
        """One channel of the deployment."""
        self._ensure_available()
        try:
            return await self._views.one(channel)
        except (RedisError, OSError) as exc:
            raise _redis_down(str(exc) or type(exc).__name__) from None

    async def channels(self, start: int, limit: int) -> tuple[list[ChannelView], int | None]:
        """A page of the deployment's channels, in the order their first cue was accepted."""
        self._ensure_available()
        try:
            return await self._views.page(start, limit)
        except (RedisError, OSError) as exc:
            raise _redis_down(str(exc) or type(exc).__name__) from None

    def _ensure_available(self) -> None:
        reason = self._unavailable()
        if reason is not None:
            raise _redis_down(reason)

    async def _full(self, full: Full, cues: Sequence[Cue]) -> CueError:
        settings = self._settings
        average = full.bytes / full.cues if full.cues else 100.0
        if full.scope == "channel":
            size = sum(len(c.item) for c in cues if c.channel == full.channel)
            count = sum(1 for c in cues if c.channel == full.channel)
            wait = await self._channel_wait(
                full,
                excess_cues=full.cues + count - settings.channel_max_cues,
                excess_bytes=full.bytes + size - settings.channel_max_bytes,
            )
            return channel_full(full.channel, full.cues, wait)
        wait = drain_wait(
            excess_cues=len(cues),
            excess_bytes=sum(len(c.item) for c in cues),
            calls_per_s=settings.account_rate,
            average_item_bytes=average,
        )
        return process_full("the gateway holds as many cues as it may; slow down", wait)

    async def _channel_wait(self, full: Full, *, excess_cues: int, excess_bytes: int) -> float:
        """As a single process answers (`channel_wait`: bursts at the full rate, a share of the
        account's calls otherwise), from the channel's counts and shared window in Redis."""
        settings = self._settings
        next_call, busy = 0.0, 1
        arn = parse_channel_arn(full.channel)
        if arn is not None:
            # Unreadable: the answer is a refusal all the same, its wait then by the rate alone.
            with contextlib.suppress(RedisError, OSError):
                next_call, busy = await self._gate.outlook(full.channel, arn.budget)
        # Times relative to now: the owner's clock is not ours, Redis's window gave `next_call`.
        load = ChannelLoad(
            waiting=full.cues,
            pending_bytes=full.bytes,
            pending_calls=full.cues,
            live=None,
            backoff_until=0.0,
            next_allowed=next_call,
            calls_per_s=share_of_calls(
                channel_rate=settings.channel_rate,
                account_rate=settings.account_rate,
                busy_channels=busy,
            ),
        )
        return channel_wait(
            load,
            excess_cues=excess_cues,
            excess_bytes=excess_bytes,
            channel_rate=settings.channel_rate,
            offline_probe=settings.offline_probe_interval,
            now=0.0,
        )


def _redis_down(reason: str) -> CueError:
    return CueError(
        "unavailable",
        f"the deployment's cues are out of reach now (Redis: {reason}); retry after the time given",
        status=503,
        retry_after=REDIS_RETRY_AFTER_S,
    )
