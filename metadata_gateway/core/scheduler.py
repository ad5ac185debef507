"""Who sends next within one account budget: fair turns, priorities, both rate limits,
back-off, scheduled releases, expiry and state repeats.

The scheduler is pure: it is told the time, hands out `Dispatch`es to send, and is told how
each ended. Channels with cues take turns (round robin, so each gets an equal share of the
account's calls). Channels whose next payload starts with a high-priority cue have a line of
their own that gets three turns in every four while others wait, so urgent cues overtake a
backlog without starving it. Channels with nothing but a state repeat due get a turn only when
no channel with fresh cues is waiting. A channel whose own limit or back-off holds it waits on
a timer and rejoins the end of its line. The async shell (`dispatcher.py`) sleeps until
`next_wakeup()`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from metadata_gateway.core.channel import Channel, Slot
from metadata_gateway.core.cues import Priority
from metadata_gateway.core.events import DeliveryListener, DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, Pending
from metadata_gateway.core.rate_limit import Call, SlidingWindowLimiter

_tiebreak = itertools.count()
HIGH_TURNS = 3  # high-priority channels get 3 of every 4 turns while others wait


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a channel waits after a failed call before its next attempt."""

    base_backoff: float = 0.2
    max_backoff: float = 5.0
    throttle_backoff: float = 1.0  # a throttle we did not cause: someone else spends the budget
    offline_probe: float = 3.0  # ChannelNotBroadcasting: probe again no more often than this

    def backoff(self, outcome: Outcome, failures: int) -> float:
        """Seconds to wait after the `failures`-th consecutive failure ending in `outcome`."""
        if outcome is Outcome.NOT_BROADCASTING:
            return self.offline_probe
        base = self.throttle_backoff if outcome is Outcome.THROTTLED else self.base_backoff
        return min(self.max_backoff, base * 2.0 ** max(0, failures - 1))


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One PutMetadata call the scheduler has admitted under both limits."""

    channel: Channel
    batch: Batch
    started: float
    account_call: Call
    channel_call: Call


class BudgetScheduler:
    """Schedules the PutMetadata calls of every channel that shares one account's budget."""

    def __init__(
        self,
        *,
        account_rate: int,
        listener: DeliveryListener,
        margin: float = 0.0,
        retry: RetryPolicy | None = None,
        on_not_broadcasting: Callable[[Channel, float, float], None] | None = None,
    ) -> None:
        self.limiter = SlidingWindowLimiter(account_rate, margin=margin)
        # Told (channel, call start, now) when IVS says a channel is not live, before the
        # channel waits: it may shorten or lengthen the wait, or end the channel's states.
        self.on_not_broadcasting = on_not_broadcasting
        self.listener = listener
        self.retry = retry or RetryPolicy()
        self._high: deque[Channel] = deque()
        self._normal: deque[Channel] = deque()
        self._repeat: deque[Channel] = deque()
        self._high_streak = 0
        self._backlogged: set[Channel] = set()  # live channels with fresh cues waiting
        self._timers: list[tuple[float, int, Channel]] = []  # back-off and own-limit waits
        self._events: list[tuple[float, int, Channel]] = []  # releases, expiries, repeats
        self.in_flight = 0

    def __repr__(self) -> str:
        return (
            f"<BudgetScheduler ready={self.ready_channels} waiting={len(self._timers)} "
            f"in_flight={self.in_flight} {self.limiter!r}>"
        )

    @property
    def ready_channels(self) -> int:
        """Channels in line for the account budget right now."""
        return len(self._high) + len(self._normal) + len(self._repeat)

    @property
    def busy_channels(self) -> int:
        """Live channels with fresh cues waiting, which share the account's calls."""
        self._has_backlog()
        return len(self._backlogged)

    def _can_serve(self) -> bool:
        """Whether a channel in line may take a call: repeat-only turns wait for no backlog."""
        return bool(self._high or self._normal or (self._repeat and not self._has_backlog()))

    def _has_backlog(self) -> bool:
        stale = [c for c in self._backlogged if not c.queue.waiting or c.live is False]
        self._backlogged.difference_update(stale)
        return bool(self._backlogged)

    def touch(self, channel: Channel, now: float) -> None:
        """Note that `channel`'s queue changed (cues added, cancelled or scheduled)."""
        if channel.slot is Slot.IDLE:
            self._schedule(channel, now)
        self._arm(channel, now)

    def step(self, now: float) -> list[Dispatch]:
        """Fire due timers and admit every call both limits allow at `now`."""
        self._fire_timers(now)
        self._fire_events(now)
        dispatches: list[Dispatch] = []
        while self._can_serve() and self.limiter.next_allowed(now) <= now:
            channel = self._next_in_line()
            channel.slot = Slot.IDLE
            if channel.next_allowed(now) > now:
                self._schedule(channel, now)
                continue
            taken = channel.queue.take_batch(
                now, repeats=channel.live is True, encoding=channel.encoding
            )
            if taken.expired:
                self.listener.cues_dropped(channel.arn.arn, taken.expired, DropReason.EXPIRED, now)
            if taken.batch is not None:
                channel.slot = Slot.IN_FLIGHT
                channel.in_flight = taken.batch
                self.in_flight += 1
                dispatches.append(
                    Dispatch(
                        channel,
                        taken.batch,
                        started=now,
                        account_call=self.limiter.start(now),
                        channel_call=channel.limiter.start(now),
                    )
                )
            self._arm(channel, now)
        return dispatches

    def next_wakeup(self, now: float) -> float:
        """When `step` next has work (`inf`: only a completion or new cue can create some)."""
        wake = math.inf
        if self._can_serve():
            wake = self.limiter.next_allowed(now)
        while self._timers and self._timers[0][2].wake_at != self._timers[0][0]:
            heapq.heappop(self._timers)
        if self._timers:
            wake = min(wake, self._timers[0][0])
        while self._events and self._events[0][2].expiry_at != self._events[0][0]:
            heapq.heappop(self._events)
        if self._events:
            wake = min(wake, self._events[0][0])
        return wake

    def complete(self, dispatch: Dispatch, outcome: Outcome, now: float, message: str = "") -> None:
        """Record how a dispatched call ended and decide the fate of its cues."""
        channel, batch = dispatch.channel, dispatch.batch
        self.limiter.finish(dispatch.account_call, now)
        channel.limiter.finish(dispatch.channel_call, now)
        self.in_flight -= 1
        channel.slot = Slot.IDLE
        channel.in_flight = None
        channel.sent_requests += 1
        arn = channel.arn.arn
        self.listener.call_finished(batch, outcome, now - dispatch.started)
        if outcome is Outcome.OK:
            channel.live = True
            channel.failures = 0
            channel.backoff_until = 0.0
            channel.delivered_cues += len(batch.cues)
            channel.queue.delivered(batch, now)
            if batch.cues:
                self.listener.cues_sent(arn, batch.cues, now)
        else:
            channel.last_error = f"{outcome.value}: {message}" if message else outcome.value
            if outcome is Outcome.NOT_BROADCASTING:
                channel.live = False
            elif outcome is Outcome.NOT_FOUND:
                channel.live = None
            if outcome.retryable:
                channel.failures += 1
                channel.backoff_until = now + self.retry.backoff(outcome, channel.failures)
                if outcome is Outcome.NOT_BROADCASTING and self.on_not_broadcasting is not None:
                    self.on_not_broadcasting(channel, dispatch.started, now)
                superseded = channel.queue.requeue(batch)
                if superseded:
                    self.listener.cues_dropped(arn, superseded, DropReason.SUPERSEDED, now)
            else:
                # A refused part ends its cue: the decoder discards the parts it holds.
                dropped = channel.queue.abandon_parts() if batch.part is not None else None
                lost = batch.cues or ((dropped,) if dropped is not None else ())
                if lost:
                    self.listener.cues_dropped(arn, lost, DropReason.IVS_ERROR, now)
        self._schedule(channel, now)
        self._arm(channel, now)

    def wake(self, channel: Channel, now: float) -> None:
        """Let a channel whose back-off no longer holds (its stream started) take its turn now."""
        if channel.slot is Slot.WAITING and channel.next_allowed(now) <= now:
            channel.slot = Slot.IDLE
            channel.wake_at = None  # its timer entry is skipped as stale
        if channel.slot is Slot.IDLE:
            self._schedule(channel, now)
        self._arm(channel, now)

    def defer(self, dispatch: Dispatch, until: float, now: float) -> None:
        """Take back a dispatched call that was never sent (a shared budget said not now): its
        cues go back to the front and the channel waits until `until`, not counted a failure."""
        channel, batch = dispatch.channel, dispatch.batch
        self.limiter.abandon(dispatch.account_call)
        channel.limiter.abandon(dispatch.channel_call)
        self.in_flight -= 1
        channel.slot = Slot.IDLE
        channel.in_flight = None
        channel.backoff_until = max(channel.backoff_until, until)
        superseded = channel.queue.requeue(batch)
        if superseded:
            self.listener.cues_dropped(channel.arn.arn, superseded, DropReason.SUPERSEDED, now)
        self._schedule(channel, now)
        self._arm(channel, now)

    def drop_all(self, channels: list[Channel], reason: DropReason, now: float) -> int:
        """Empty the queues of `channels` (at shutdown); return how many cues were dropped."""
        dropped = 0
        for channel in channels:
            cues: list[Pending] = [*channel.queue, *channel.queue.scheduled]
            for pending in cues:
                channel.queue.remove(pending)
            in_parts = channel.queue.abandon_parts()
            last_part_in_flight = channel.in_flight is not None and channel.in_flight.cues
            if in_parts is not None and not last_part_in_flight:
                cues.append(in_parts)
            if cues:
                dropped += len(cues)
                self.listener.cues_dropped(channel.arn.arn, cues, reason, now)
        return dropped

    # ---- lines and timers ---------------------------------------------------------------

    def _next_in_line(self) -> Channel:
        if self._high and (not self._normal or self._high_streak < HIGH_TURNS):
            self._high_streak += 1
            return self._high.popleft()
        self._high_streak = 0
        if self._normal:
            return self._normal.popleft()
        return self._repeat.popleft()

    def _schedule(self, channel: Channel, now: float) -> None:
        """Put an idle channel in its line, or on a timer, if it has anything to send."""
        queue = channel.queue
        head = queue.head_priority()
        if head is None and not (channel.live is True and queue.repeats_due(now)):
            return
        if head is not None and channel.live is not False:
            self._backlogged.add(channel)
        when = channel.next_allowed(now)
        if when > now:
            channel.slot = Slot.WAITING
            channel.wake_at = when
            heapq.heappush(self._timers, (when, next(_tiebreak), channel))
            return
        channel.slot = Slot.READY
        channel.wake_at = None
        if head is Priority.HIGH:
            self._high.append(channel)
        elif head is not None:
            self._normal.append(channel)
        else:
            self._repeat.append(channel)

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, channel = heapq.heappop(timers)
            if channel.wake_at == when and channel.slot is Slot.WAITING:
                channel.wake_at = None
                channel.slot = Slot.IDLE
                self._schedule(channel, now)

    def _arm(self, channel: Channel, now: float) -> None:
        when = channel.queue.next_event(now, live=channel.live is True)
        if when != channel.expiry_at:
            channel.expiry_at = when
            if when is not None:
                heapq.heappush(self._events, (when, next(_tiebreak), channel))

    def _fire_events(self, now: float) -> None:
        events = self._events
        while events and events[0][0] <= now:
            when, _, channel = heapq.heappop(events)
            if channel.expiry_at != when:
                continue
            channel.expiry_at = None
            channel.queue.release(now)
            expired = channel.queue.expire(now)
            if expired:
                self.listener.cues_dropped(channel.arn.arn, expired, DropReason.EXPIRED, now)
            if channel.slot is Slot.IDLE:
                self._schedule(channel, now)
            self._arm(channel, now)
