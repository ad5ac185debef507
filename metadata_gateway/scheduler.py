"""Who sends next within one account budget: fair turns, both rate limits, back-off and expiry.

The scheduler is pure: it is told the time, hands out `Dispatch`es to send, and is told how
each ended. Channels with cues take turns (round robin, so each gets an equal share of the
account's calls); a channel whose own limit or back-off holds it waits on a timer and rejoins
the end of the line. The async shell (`dispatcher.py`) sleeps until `next_wakeup()`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass

from metadata_gateway.channel import Channel, Slot
from metadata_gateway.channel_queue import Batch, Pending
from metadata_gateway.events import DeliveryListener, DropReason
from metadata_gateway.ivs import Outcome
from metadata_gateway.rate_limit import Call, SlidingWindowLimiter

_tiebreak = itertools.count()


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
    ) -> None:
        self.limiter = SlidingWindowLimiter(account_rate, margin=margin)
        self.listener = listener
        self.retry = retry or RetryPolicy()
        self._ready: deque[Channel] = deque()
        self._timers: list[tuple[float, int, Channel]] = []
        self._expiries: list[tuple[float, int, Channel]] = []
        self.in_flight = 0

    def __repr__(self) -> str:
        return (
            f"<BudgetScheduler ready={len(self._ready)} waiting={len(self._timers)} "
            f"in_flight={self.in_flight} {self.limiter!r}>"
        )

    @property
    def ready_channels(self) -> int:
        """Channels in line for the account budget right now."""
        return len(self._ready)

    def touch(self, channel: Channel, now: float) -> None:
        """Note that `channel`'s queue changed (cues were added or removed)."""
        if channel.slot is Slot.IDLE and len(channel.queue):
            self._schedule(channel, now)
        self._arm_expiry(channel)

    def step(self, now: float) -> list[Dispatch]:
        """Fire due timers and admit every call both limits allow at `now`."""
        self._fire_timers(now)
        self._fire_expiries(now)
        dispatches: list[Dispatch] = []
        while self._ready and self.limiter.next_allowed(now) <= now:
            channel = self._ready.popleft()
            channel.slot = Slot.IDLE
            if channel.next_allowed(now) > now:
                self._schedule(channel, now)
                continue
            taken = channel.queue.take_batch(now)
            if taken.expired:
                self.listener.cues_dropped(channel.arn.arn, taken.expired, DropReason.EXPIRED, now)
            if taken.batch is not None:
                channel.slot = Slot.IN_FLIGHT
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
            self._arm_expiry(channel)
        return dispatches

    def next_wakeup(self, now: float) -> float:
        """When `step` next has work (`inf`: only a completion or new cue can create some)."""
        wake = math.inf
        if self._ready:
            wake = self.limiter.next_allowed(now)
        while self._timers and self._timers[0][2].wake_at != self._timers[0][0]:
            heapq.heappop(self._timers)
        if self._timers:
            wake = min(wake, self._timers[0][0])
        while self._expiries and self._expiries[0][2].expiry_at != self._expiries[0][0]:
            heapq.heappop(self._expiries)
        if self._expiries:
            wake = min(wake, self._expiries[0][0])
        return wake

    def complete(self, dispatch: Dispatch, outcome: Outcome, now: float, message: str = "") -> None:
        """Record how a dispatched call ended and decide the fate of its cues."""
        channel, batch = dispatch.channel, dispatch.batch
        self.limiter.finish(dispatch.account_call, now)
        channel.limiter.finish(dispatch.channel_call, now)
        self.in_flight -= 1
        channel.slot = Slot.IDLE
        channel.sent_requests += 1
        arn = channel.arn.arn
        self.listener.call_finished(batch, outcome, now - dispatch.started)
        if outcome is Outcome.OK:
            channel.live = True
            channel.failures = 0
            channel.backoff_until = 0.0
            channel.delivered_cues += len(batch.cues)
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
                superseded = channel.queue.requeue(batch)
                if superseded:
                    self.listener.cues_dropped(arn, superseded, DropReason.SUPERSEDED, now)
            else:
                self.listener.cues_dropped(arn, batch.cues, DropReason.IVS_ERROR, now)
        if len(channel.queue):
            self._schedule(channel, now)
        self._arm_expiry(channel)

    def drop_all(self, channels: list[Channel], reason: DropReason, now: float) -> int:
        """Empty the queues of `channels` (at shutdown); return how many cues were dropped."""
        dropped = 0
        for channel in channels:
            cues: list[Pending] = list(channel.queue)
            for pending in cues:
                channel.queue.remove(pending)
            if cues:
                dropped += len(cues)
                self.listener.cues_dropped(channel.arn.arn, cues, reason, now)
        return dropped

    def _schedule(self, channel: Channel, now: float) -> None:
        when = channel.next_allowed(now)
        if when <= now:
            channel.slot = Slot.READY
            channel.wake_at = None
            self._ready.append(channel)
        else:
            channel.slot = Slot.WAITING
            channel.wake_at = when
            heapq.heappush(self._timers, (when, next(_tiebreak), channel))

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, channel = heapq.heappop(timers)
            if channel.wake_at == when and channel.slot is Slot.WAITING:
                channel.wake_at = None
                channel.slot = Slot.IDLE
                if len(channel.queue):
                    self._schedule(channel, now)

    def _arm_expiry(self, channel: Channel) -> None:
        when = channel.queue.next_expiry()
        if when != channel.expiry_at:
            channel.expiry_at = when
            if when is not None:
                heapq.heappush(self._expiries, (when, next(_tiebreak), channel))

    def _fire_expiries(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            when, _, channel = heapq.heappop(expiries)
            if channel.expiry_at != when:
                continue
            channel.expiry_at = None
            expired = channel.queue.expire(now)
            if expired:
                self.listener.cues_dropped(channel.arn.arn, expired, DropReason.EXPIRED, now)
            self._arm_expiry(channel)
