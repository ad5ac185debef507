"""The core's state: channels, their queues and account budgets, and the books kept on every
accepted cue (totals, recent ids, what became of it). Framework-free: time comes from the clock
it is given, or as `now`; the asyncio owner (`engine.py`) runs its schedulers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from metadata_gateway.config import Settings
from metadata_gateway.core.admission import ChannelLoad, share_of_calls
from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.channel import Channel
from metadata_gateway.core.cues import Cue
from metadata_gateway.core.errors import already_sent, not_found
from metadata_gateway.core.events import DeliveryListener, DropReason
from metadata_gateway.core.idempotency import IdState, RecentIds
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, CueState, Pending
from metadata_gateway.core.scheduler import BudgetScheduler, RetryPolicy
from metadata_gateway.core.stream_sessions import StreamSessions

log = logging.getLogger(__name__)

# Outcomes that say IVS itself is unreachable or failing, not that a call was refused.
_TROUBLE = frozenset({Outcome.TIMEOUT, Outcome.CONNECTION_ERROR, Outcome.SERVER_ERROR})


class QueueObserver(Protocol):
    """The asyncio owner, told when there is something to run."""

    def budget_added(self, budget: tuple[str, str]) -> None:
        """A channel of a new account budget appeared: it needs a dispatcher."""

    def work(self, budget: tuple[str, str]) -> None:
        """Cues were queued in this budget: its scheduler should look again now."""

    def emptied(self) -> None:
        """No cue is held any more (a drain may end)."""


class _NoObserver:
    def budget_added(self, budget: tuple[str, str]) -> None:
        pass

    def work(self, budget: tuple[str, str]) -> None:
        pass

    def emptied(self) -> None:
        pass


class Gateway:
    """Channels, their queues and budgets, and the books on every accepted cue."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.wall_clock = wall_clock
        self.observer: QueueObserver = _NoObserver()
        self.channels: dict[str, Channel] = {}
        self.schedulers: dict[tuple[str, str], BudgetScheduler] = {}
        self.listeners: list[DeliveryListener] = []
        self.recent = RecentIds()
        self.retry = RetryPolicy(offline_probe=settings.offline_probe_interval)
        self.aliases = {arn: alias for alias, arn in settings.channels.items()}
        self.total_cues = 0  # accepted and not yet sent or dropped, in flight included
        self.total_bytes = 0
        self.draining = False
        self.ivs_trouble: tuple[float, str] | None = None  # since when, and what IVS calls end in
        # What IVS's stream events and answers say about each channel's broadcast.
        self.streams = StreamSessions(self)
        for arn in settings.channels.values():
            self.channel(arn)

    def __repr__(self) -> str:
        return (
            f"<Gateway channels={len(self.channels)} queued={self.total_cues} "
            f"budgets={len(self.schedulers)} draining={self.draining}>"
        )

    def now(self) -> float:
        """The one clock: the event loop's, unless the owner injected another."""
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def enqueue_accepted(self, cue: Cue, *, accepted_wall: float) -> None:
        """Queue a cue another component already accepted and bounded (at `accepted_wall`, Unix
        seconds), so that its TTL still counts from its acceptance."""
        now, wall = self.now(), self.wall_clock()
        if cue.not_before is None:
            cue = dataclasses.replace(cue, ttl=max(0.0, cue.ttl - max(0.0, wall - accepted_wall)))
        self.enqueue(cue, now, wall)

    def restore_repeating(self, cue: Cue, *, expires_wall: float, last_sent_wall: float) -> None:
        """Go on repeating a state cue another process sent (last at `last_sent_wall`, Unix
        seconds), on the same schedule: its next repeat falls due one interval after that."""
        now, wall = self.now(), self.wall_clock()
        if cue.repeat is None or cue.key is None or expires_wall <= wall:
            return
        channel = self.channel(cue.channel)
        due = now + max(0.0, last_sent_wall + cue.repeat - wall)
        pending = Pending(
            cue, accepted_at=now, expires_at=now + (expires_wall - wall), release_at=now
        )
        pending.repeat_at = due
        if channel.queue.restore_state(pending):
            if channel.live is None:
                # It was live at its last send; if that changed, the first repeat finds out.
                channel.live = True
            budget = channel.arn.budget
            self.schedulers[budget].touch(channel, now)
            self.observer.work(budget)

    def evict(self, arns: Iterable[str]) -> list[Pending]:
        """Forget the waiting, scheduled and repeating cues of these channels without telling the
        listeners (another process sends them now); return them. Calls in flight go on."""
        forgotten: list[Pending] = []
        now = self.now()
        for arn in arns:
            channel = self.channels.get(arn)
            if channel is None:
                continue
            queue = channel.queue
            for pending in [*queue, *queue.scheduled]:
                queue.remove(pending)
                self.recent.forget(arn, pending.cue.id)
                self._release([pending])
                forgotten.append(pending)
            for pending in queue.repeating:
                queue.cancel(pending.cue.id)
                forgotten.append(pending)
            self.schedulers[channel.arn.budget].touch(channel, now)
        return forgotten

    def enqueue(self, cue: Cue, now: float, wall: float) -> None:
        """Queue an admitted cue (its room already checked) and wake its budget's scheduler."""
        channel = self.channel(cue.channel)
        release_at = None if cue.not_before is None else now + (cue.not_before - wall)
        superseded = channel.queue.add(cue, now, release_at=release_at)
        self.total_cues += 1
        self.total_bytes += len(cue.item)
        if cue.client_id:
            self.recent.set(cue.channel, cue.id, IdState.QUEUED, now)
        if superseded is not None:
            self.cues_dropped(cue.channel, [superseded], DropReason.SUPERSEDED, now)
        budget = channel.arn.budget
        self.schedulers[budget].touch(channel, now)
        self.observer.work(budget)

    def _budget_channels(self, budget: tuple[str, str]) -> Iterator[Channel]:
        return (c for c in self.channels.values() if c.arn.budget == budget)

    def load(self, channel: Channel, now: float) -> ChannelLoad:
        """What admission needs to know of this channel, in numbers."""
        queue = channel.queue
        busy = self.schedulers[channel.arn.budget].busy_channels
        return ChannelLoad(
            waiting=len(queue),
            pending_bytes=queue.pending_bytes,
            pending_calls=queue.pending_calls,
            live=channel.live,
            backoff_until=channel.backoff_until,
            next_allowed=channel.next_allowed(now),
            calls_per_s=share_of_calls(
                channel_rate=self.settings.channel_rate,
                account_rate=self.settings.account_rate,
                busy_channels=busy,
            ),
            expiries=[p.expires_at for p in queue] if channel.live is False else (),
        )

    def drop_all(self, reason: DropReason, now: float) -> int:
        """Drop every cue still held (at shutdown), telling the listeners; return how many."""
        dropped = 0
        for budget, scheduler in self.schedulers.items():
            dropped += scheduler.drop_all(list(self._budget_channels(budget)), reason, now)
        return dropped

    def health(self) -> dict[str, object]:
        """What /readyz reports: ready, draining, or degraded (IVS failing; cues still held)."""
        if self.draining:
            return {"status": "draining"}
        if self.ivs_trouble is not None:
            since, outcome = self.ivs_trouble
            seconds = round(self.now() - since, 1)
            return {
                "status": "degraded",
                "reason": f"IVS calls have ended in {outcome} for {seconds} s; "
                "cues are held until their TTL and sending resumes by itself",
            }
        return {"status": "ready"}

    def cancel(self, arn: str, cue_id: str) -> CueState:
        """Cancel a waiting, scheduled or repeating cue of channel `arn`; return its former state;
        raise `already_sent` (409) or `not_found` (404)."""
        now = self.now()
        channel = self.channels.get(arn)
        found = channel.queue.cancel(cue_id) if channel is not None else None
        if found is not None and channel is not None:
            pending, state = found
            # A repeating state cue was delivered and released its room already.
            self._dropped(
                [pending], arn, DropReason.CANCELLED, now, release=state is not CueState.REPEATING
            )
            self.schedulers[channel.arn.budget].touch(channel, now)
            return state
        in_parts = channel.queue.in_parts if channel is not None else None
        in_flight = channel is not None and (
            (in_parts is not None and in_parts.cue.id == cue_id)
            or (
                channel.in_flight is not None
                and any(p.cue.id == cue_id for p in channel.in_flight.cues)
            )
        )
        if in_flight or self.recent.lookup(arn, cue_id, now) is IdState.DELIVERED:
            raise already_sent(cue_id, arn)
        raise not_found(cue_id, arn)

    def channel(self, arn: str) -> Channel:
        """The channel with this ARN, created on first use."""
        channel = self.channels.get(arn)
        if channel is not None:
            return channel
        parsed = parse_channel_arn(arn)
        if parsed is None:
            raise ValueError(f"not a channel ARN: {arn!r}")
        channel = Channel(
            parsed,
            rate=self.settings.channel_rate,
            margin=self.settings.window_margin,
            encoding=self.settings.encoding(arn),
        )
        self.channels[arn] = channel
        if parsed.budget not in self.schedulers:
            self._add_budget(parsed.budget)
        return channel

    def _add_budget(self, budget: tuple[str, str]) -> None:
        self.schedulers[budget] = BudgetScheduler(
            account_rate=self.settings.account_rate,
            listener=self,
            margin=self.settings.window_margin,
            retry=self.retry,
            on_not_broadcasting=self.streams.not_broadcasting,
        )
        self.observer.budget_added(budget)

    # ---- DeliveryListener: keep the books, then tell the other listeners ------------------

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        """Mark ids delivered and release the cues' room."""
        for pending in cues:
            # Every id, not only clients': a cancel answers already_sent for a while.
            self.recent.set(channel, pending.cue.id, IdState.DELIVERED, now)
        self._release(cues)
        for listener in self.listeners:
            listener.cues_sent(channel, cues, now)

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """Forget the ids (a dropped cue may be sent again) and release the cues' room."""
        self._dropped(cues, channel, reason, now, release=True)

    def drop_repeating(
        self, channel: Channel, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """Stop repeating these state cues of `channel` (their room was released when sent)."""
        for pending in cues:
            channel.queue.cancel(pending.cue.id)
        if cues:
            self._dropped(cues, channel.arn.arn, reason, now, release=False)

    def _dropped(
        self,
        cues: Sequence[Pending],
        channel: str,
        reason: DropReason,
        now: float,
        *,
        release: bool,
    ) -> None:
        for pending in cues:
            if pending.cue.client_id:
                self.recent.forget(channel, pending.cue.id)
        if release:
            self._release(cues)
        for listener in self.listeners:
            listener.cues_dropped(channel, cues, reason, now)

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        """Note whether IVS is answering, and pass the call's outcome on."""
        if outcome in _TROUBLE:
            if self.ivs_trouble is None:
                self.ivs_trouble = (self.now(), outcome.value)
        else:
            self.ivs_trouble = None
        for listener in self.listeners:
            listener.call_finished(batch, outcome, duration)

    def _release(self, cues: Sequence[Pending]) -> None:
        self.total_cues -= len(cues)
        self.total_bytes -= sum(p.size for p in cues)
        if self.total_cues == 0:
            self.observer.emptied()
