"""The intake of a single process: cues kept in this process's channel queues, never waiting."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metadata_gateway.core.admission import (
    MIN_RETRY_AFTER_S,
    Bound,
    channel_full,
    channel_wait,
    drain_wait,
    process_full,
    shutting_down,
)
from metadata_gateway.core.channel import Channel
from metadata_gateway.core.cues import Cue
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.idempotency import IdState
from metadata_gateway.intake.seam import Accepted, Cancelled, ChannelView

DEFAULT_ITEM_BYTES = 100.0  # the size assumed for cues of an empty process


class LocalIntake:
    """An `Intake` over this process's queues (`Gateway`)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.settings
        self._channel_bound = Bound(settings.channel_max_cues, settings.channel_max_bytes)
        self._process_bound = Bound(settings.total_max_cues, settings.total_max_bytes)

    def __repr__(self) -> str:
        return f"<LocalIntake {self.gateway!r}>"

    def ensure_open(self) -> None:
        """Refuse while the process drains."""
        if self.gateway.draining:
            raise shutting_down()

    async def keep(self, cues: Sequence[Cue]) -> list[Accepted]:
        """Queue the cues in this process, all or none."""
        return self.keep_now(cues)

    def keep_now(self, cues: Sequence[Cue]) -> list[Accepted]:
        """`keep`, for callers without an event loop (a local queue never waits)."""
        self.ensure_open()
        gateway = self.gateway
        now, wall = gateway.now(), gateway.wall_clock()
        recent = gateway.recent
        answers: list[Accepted] = []
        fresh: list[Cue] = []
        seen: set[tuple[str, str]] = set()
        for cue in cues:
            state = recent.lookup(cue.channel, cue.id, now) if cue.client_id else None
            if state is not None:
                delivered = state is IdState.DELIVERED
                answers.append(Accepted(cue.id, cue.channel, "duplicate", cue.type, delivered))
            elif cue.client_id and (cue.channel, cue.id) in seen:
                answers.append(Accepted(cue.id, cue.channel, "duplicate", cue.type, False))
            else:
                seen.add((cue.channel, cue.id))
                fresh.append(cue)
                answers.append(Accepted(cue.id, cue.channel, "queued", cue.type))
        self._check_room(fresh, now)
        for cue in fresh:
            gateway.enqueue(cue, now, wall)
        return answers

    def _check_room(self, cues: Sequence[Cue], now: float) -> None:
        gateway = self.gateway
        per_channel: dict[str, tuple[int, int]] = {}
        for cue in cues:
            count, size = per_channel.get(cue.channel, (0, 0))
            per_channel[cue.channel] = (count + 1, size + len(cue.item))
        for arn, adding in per_channel.items():
            channel = gateway.channel(arn)
            queue = channel.queue
            excess = self._channel_bound.excess((len(queue), queue.pending_bytes), adding)
            if excess is not None:
                wait = self._channel_wait(channel, excess[0], excess[1], now)
                raise channel_full(arn, len(queue), wait)
        size = sum(len(c.item) for c in cues)
        held = (gateway.total_cues, gateway.total_bytes)
        excess = self._process_bound.excess(held, (len(cues), size))
        if excess is not None:
            budgets = max(1, len(gateway.schedulers))
            total = gateway.total_cues
            average = gateway.total_bytes / total if total else DEFAULT_ITEM_BYTES
            wait = drain_wait(
                excess_cues=excess[0],
                excess_bytes=excess[1],
                calls_per_s=budgets * gateway.settings.account_rate,
                average_item_bytes=average,
            )
            raise process_full(f"the gateway holds {total} cues, its bound; slow down", wait)

    def _channel_wait(
        self, channel: Channel, excess_cues: int, excess_bytes: int, now: float
    ) -> float:
        return channel_wait(
            self.gateway.load(channel, now),
            excess_cues=excess_cues,
            excess_bytes=excess_bytes,
            channel_rate=self.gateway.settings.channel_rate,
            offline_probe=self.gateway.retry.offline_probe,
            now=now,
        )

    async def cancel(self, channel: str, cue_id: str) -> Cancelled:
        """Cancel a cue held in this process."""
        state = self.gateway.cancel(channel, cue_id)
        return Cancelled(cue_id, channel, state.value)

    def room_wait(self, keys: Iterable[tuple[str, str]], excess: int) -> float:
        """Seconds until `excess` of these cues have left their channels' queues."""
        now = self.gateway.now()
        counts: dict[str, int] = {}
        for arn, _ in keys:
            counts[arn] = counts.get(arn, 0) + 1
        channels = self.gateway.channels
        waits = [
            self._channel_wait(channels[arn], min(excess, n), 0, now)
            for arn, n in counts.items()
            if arn in channels
        ]
        return min(waits, default=MIN_RETRY_AFTER_S)

    async def channel(self, channel: str) -> ChannelView:
        """One channel of this process; a valid ARN never met shows zeros, and nothing is made."""
        found = self.gateway.channels.get(channel)
        if found is None:
            return ChannelView(channel, self.gateway.aliases.get(channel))
        return self._view(found, detail=True)

    async def channels(self, start: int, limit: int) -> tuple[list[ChannelView], int | None]:
        """A page of this process's channels, in the order it met them."""
        known = list(self.gateway.channels.values())
        following = start + limit if start + limit < len(known) else None
        return [self._view(c) for c in known[start : start + limit]], following

    def _view(self, channel: Channel, *, detail: bool = False) -> ChannelView:
        queue = channel.queue
        arn = channel.arn.arn
        return ChannelView(
            channel=arn,
            alias=self.gateway.aliases.get(arn),
            pending=queue.waiting,
            pending_bytes=queue.pending_bytes,
            scheduled=len(queue) - queue.waiting,
            repeating=len(queue.repeating),
            live=channel.live,
            sent_requests=channel.sent_requests,
            delivered_cues=channel.delivered_cues,
            last_error=channel.last_error,
            scheduled_cues=tuple(
                {"id": p.cue.id, "type": p.cue.type, "not_before": p.cue.not_before}
                for p in queue.scheduled
            )
            if detail
            else (),
            repeating_cues=tuple(
                {"id": p.cue.id, "key": p.cue.key, "repeat_ms": round((p.cue.repeat or 0) * 1000)}
                for p in queue.repeating
            )
            if detail
            else (),
        )

    def health(self) -> dict[str, object]:
        """Ready, draining, or degraded while IVS fails (cues are still held)."""
        return self.gateway.health()

    def unavailable(self) -> str | None:
        """A local queue is always there."""
        return None
