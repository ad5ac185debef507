"""The gateway's core: accept cues into channel queues, within bounds, and hand them to the
schedulers of their account budgets. Framework-free: the web layer and the tests drive it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from metadata_gateway.arn import parse_channel_arn
from metadata_gateway.backpressure import (
    DRAIN_SAFETY,
    MIN_RETRY_AFTER_S,
    cues_per_call,
    drain_wait,
    expiry_wait,
)
from metadata_gateway.channel import Channel
from metadata_gateway.channel_queue import Batch, CueState, Pending
from metadata_gateway.config import Settings
from metadata_gateway.cues import Cue, id_factory, parse_cue, resolve_channel
from metadata_gateway.dispatcher import CallGate, Dispatcher
from metadata_gateway.envelope import MAX_ITEM_BYTES, MAX_METADATA_BYTES
from metadata_gateway.errors import CueError
from metadata_gateway.events import DeliveryListener, DropReason
from metadata_gateway.idempotency import IdState, RecentIds
from metadata_gateway.ivs import MetadataSink, Outcome
from metadata_gateway.rate_limit import WINDOW_S
from metadata_gateway.scheduler import BudgetScheduler, RetryPolicy
from metadata_gateway.stream_sessions import StreamSessions

log = logging.getLogger(__name__)

MAX_CUES_PER_REQUEST = 100
MAX_SCHEDULE_AHEAD_S = 24 * 3600  # not_before at most a day ahead
BURST_SLACK_S = 0.05  # a call's own time, so that room exists when the client comes back

# Outcomes that say IVS itself is unreachable or failing, not that a call was refused.
_TROUBLE = frozenset({Outcome.TIMEOUT, Outcome.CONNECTION_ERROR, Outcome.SERVER_ERROR})
SHUTDOWN_RETRY_AFTER_S = 5.0  # long enough for a replacement process to come up


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer for one submitted cue."""

    id: str
    channel: str
    status: str  # "queued" or "duplicate"
    type: str
    delivered: bool | None = None  # for duplicates: was the original already sent?

    def as_json(self) -> dict[str, object]:
        """The entry of the `cues` list in a 202 answer or a WebSocket ack."""
        body: dict[str, object] = {"id": self.id, "channel": self.channel, "status": self.status}
        if self.delivered is not None:
            body["delivered"] = self.delivered
        return body


class Gateway:
    """Channels, their queues and budgets; `submit` in, PutMetadata calls out."""

    def __init__(
        self,
        settings: Settings,
        *,
        sink: MetadataSink,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
        gate: CallGate | None = None,
        regions: frozenset[str] | None = None,
    ) -> None:
        self.settings = settings
        self._sink = sink
        self._gate = gate
        # Regions cues may name; each one costs an IVS client, so made-up ones are refused.
        self.regions = regions
        self._clock = clock
        self.wall_clock = wall_clock
        self._new_id = new_id or id_factory()
        self.channels: dict[str, Channel] = {}
        self.schedulers: dict[tuple[str, str], BudgetScheduler] = {}
        self.dispatchers: dict[tuple[str, str], Dispatcher] = {}
        self.listeners: list[DeliveryListener] = []
        self.recent = RecentIds()
        self.retry = RetryPolicy(offline_probe=settings.offline_probe_interval)
        self.aliases = {arn: alias for alias, arn in settings.channels.items()}
        self.total_cues = 0  # accepted and not yet sent or dropped, in flight included
        self.total_bytes = 0
        self.draining = False
        self.ivs_trouble: tuple[float, str] | None = None  # since when, and what IVS calls end in
        self._started = False
        self._hold_until = 0.0

        self._empty = asyncio.Event()
        self._empty.set()
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
        """The gateway's clock: the event loop's, unless a test injected another."""
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    # ---- intake -------------------------------------------------------------------------

    def submit(
        self,
        objs: Sequence[object],
        *,
        batch: bool = False,
        authorize: Callable[[Sequence[Cue]], None] | None = None,
    ) -> list[Accepted]:
        """Validate, authorize and queue cues, all or none; raise `CueError` for the first
        problem."""
        cues = self.prepare(objs, batch=batch, authorize=authorize)
        now, wall = self.now(), self.wall_clock()
        answers: list[Accepted] = []
        fresh: list[Cue] = []
        seen: dict[tuple[str, str], Cue] = {}
        for cue in cues:
            state = self.recent.lookup(cue.channel, cue.id, now) if cue.client_id else None
            if state is not None:
                delivered = state is IdState.DELIVERED
                answers.append(Accepted(cue.id, cue.channel, "duplicate", cue.type, delivered))
            elif cue.client_id and (cue.channel, cue.id) in seen:
                answers.append(Accepted(cue.id, cue.channel, "duplicate", cue.type, False))
            else:
                seen[(cue.channel, cue.id)] = cue
                fresh.append(cue)
                answers.append(Accepted(cue.id, cue.channel, "queued", cue.type))
        self._check_room(fresh, now)
        for cue in fresh:
            self._enqueue(cue, now, wall)
        return answers

    def prepare(
        self,
        objs: Sequence[object],
        *,
        batch: bool = False,
        authorize: Callable[[Sequence[Cue]], None] | None = None,
    ) -> list[Cue]:
        """Validate and authorize cues without queueing them; raise `CueError` for the first
        problem (the first half of `submit`, for an intake that keeps cues elsewhere)."""
        if self.draining:
            raise CueError(
                "shutting_down",
                "the gateway is shutting down; send to another instance",
                status=503,
                retry_after=SHUTDOWN_RETRY_AFTER_S,
            )
        if len(objs) > MAX_CUES_PER_REQUEST:
            raise CueError(
                "invalid_cue",
                f"at most {MAX_CUES_PER_REQUEST} cues per request, not {len(objs)}",
                status=400,
                field="cues",
            )
        wall = self.wall_clock()
        cues = [self._parse(obj, index if batch else None, wall) for index, obj in enumerate(objs)]
        if authorize is not None:
            authorize(cues)
        return cues

    def enqueue_accepted(self, cue: Cue, *, accepted_wall: float) -> None:
        """Queue a cue another component already accepted and bounded (at `accepted_wall`, Unix
        seconds), so that its TTL still counts from its acceptance."""
        now, wall = self.now(), self.wall_clock()
        if cue.not_before is None:
            cue = dataclasses.replace(cue, ttl=max(0.0, cue.ttl - max(0.0, wall - accepted_wall)))
        self._enqueue(cue, now, wall)

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

    def _parse(self, obj: object, index: int | None, wall: float) -> Cue:
        try:
            cue = parse_cue(
                obj,
                aliases=self.settings.channels,
                new_id=self._new_id,
                max_cue_bytes=self.settings.max_cue_bytes,
            )
            region = cue.channel.split(":", 4)[3]
            if self.regions is not None and region not in self.regions:
                raise CueError(
                    "invalid_cue",
                    f"IVS has no region {region!r} (known: {', '.join(sorted(self.regions))})",
                    status=400,
                    field="channel",
                )
            if cue.not_before is not None and cue.not_before > wall + MAX_SCHEDULE_AHEAD_S:
                raise CueError(
                    "invalid_cue",
                    "not_before may be at most 24 hours ahead",
                    status=400,
                    field="not_before",
                )
        except CueError as exc:
            raise exc.with_index(index) if index is not None else exc from None
        return cue

    def _enqueue(self, cue: Cue, now: float, wall: float) -> None:
        channel = self.channel(cue.channel)
        release_at = None if cue.not_before is None else now + (cue.not_before - wall)
        superseded = channel.queue.add(cue, now, release_at=release_at)
        self.total_cues += 1
        self.total_bytes += len(cue.item)
        self._empty.clear()
        if cue.client_id:
            self.recent.set(cue.channel, cue.id, IdState.QUEUED, now)
        if superseded is not None:
            self.cues_dropped(cue.channel, [superseded], DropReason.SUPERSEDED, now)
        budget = channel.arn.budget
        self.schedulers[budget].touch(channel, now)
        dispatcher = self.dispatchers.get(budget)
        if dispatcher is not None:
            dispatcher.wake()

    def _check_room(self, cues: Sequence[Cue], now: float) -> None:
        per_channel: dict[str, tuple[int, int]] = {}
        for cue in cues:
            count, size = per_channel.get(cue.channel, (0, 0))
            per_channel[cue.channel] = (count + 1, size + len(cue.item))
        for arn, (count, size) in per_channel.items():
            channel = self.channel(arn)
            excess_cues = len(channel.queue) + count - self.settings.channel_max_cues
            excess_bytes = channel.queue.pending_bytes + size - self.settings.channel_max_bytes
            if excess_cues > 0 or excess_bytes > 0:
                wait = self._channel_wait(channel, excess_cues, excess_bytes, now)
                raise CueError(
                    "queue_full",
                    f"channel {arn} has {len(channel.queue)} cues waiting, its bound; "
                    "slow down and retry after the time given",
                    status=429,
                    retry_after=wait,
                    scope="channel",
                    channel=arn,
                )
        count = len(cues)
        size = sum(len(c.item) for c in cues)
        excess_cues = self.total_cues + count - self.settings.total_max_cues
        excess_bytes = self.total_bytes + size - self.settings.total_max_bytes
        if excess_cues > 0 or excess_bytes > 0:
            budgets = max(1, len(self.schedulers))
            average = self.total_bytes / self.total_cues if self.total_cues else 100.0
            wait = drain_wait(
                excess_cues=excess_cues,
                excess_bytes=excess_bytes,
                calls_per_s=budgets * self.settings.account_rate,
                average_item_bytes=average,
            )
            raise CueError(
                "queue_full",
                f"the gateway holds {self.total_cues} cues, its bound; slow down",
                status=429,
                retry_after=wait,
                scope="process",
            )

    def _channel_wait(
        self, channel: Channel, excess_cues: int, excess_bytes: int, now: float
    ) -> float:
        queue = channel.queue
        if channel.live is False:
            return max(
                expiry_wait((p.expires_at for p in queue), excess_cues, now),
                min(channel.backoff_until - now, self.retry.offline_probe),
            )
        average = queue.pending_bytes / len(queue) if len(queue) else 100.0
        share = self._calls_per_s(channel)
        # Cues in parts take a call per part: the calls beyond one per cue, waiting ahead.
        extra_calls = queue.pending_calls - len(queue)
        wait = drain_wait(
            excess_cues=excess_cues,
            excess_bytes=excess_bytes,
            calls_per_s=share,
            average_item_bytes=min(average, MAX_ITEM_BYTES),
        ) + extra_calls / (share * DRAIN_SAFETY)
        if share >= self.settings.channel_rate:
            # At its full rate a channel sends in bursts (a window's worth, then a pause):
            # an average rate would promise room a little before the pause ends.
            calls = extra_calls + max(
                math.ceil(excess_cues / cues_per_call(average)),
                math.ceil(excess_bytes / MAX_METADATA_BYTES),
            )
            first = max(channel.next_allowed(now), now)
            bursts = (calls - 1) // self.settings.channel_rate
            wait = max(wait, first - now + bursts * WINDOW_S + BURST_SLACK_S)
        return wait + max(0.0, channel.backoff_until - now)

    def _calls_per_s(self, channel: Channel) -> float:
        """The share of calls this channel gets while its account's busy channels take turns."""
        busy = self.schedulers[channel.arn.budget].busy_channels
        return min(self.settings.channel_rate, self.settings.account_rate / max(1, busy))

    def in_flight_wait(self, keys: Iterable[tuple[str, str]], excess: int) -> float:
        """Seconds until `excess` of these (channel, id) cues have been sent or dropped."""
        now = self.now()
        counts: dict[str, int] = {}
        for arn, _ in keys:
            counts[arn] = counts.get(arn, 0) + 1
        waits = [
            self._channel_wait(self.channels[arn], min(excess, n), 0, now)
            for arn, n in counts.items()
            if arn in self.channels
        ]
        return min(waits, default=MIN_RETRY_AFTER_S)

    def _budget_channels(self, budget: tuple[str, str]) -> Iterator[Channel]:
        return (c for c in self.channels.values() if c.arn.budget == budget)

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

    def cancel(self, channel_ref: str, cue_id: str) -> tuple[str, CueState]:
        """Cancel a waiting, scheduled or repeating cue; return its channel ARN and former state."""
        arn = resolve_channel(channel_ref, self.settings.channels)
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
            return arn, state
        in_parts = channel.queue.in_parts if channel is not None else None
        in_flight = channel is not None and (
            (in_parts is not None and in_parts.cue.id == cue_id)
            or (
                channel.in_flight is not None
                and any(p.cue.id == cue_id for p in channel.in_flight.cues)
            )
        )
        if in_flight or self.recent.lookup(arn, cue_id, now) is IdState.DELIVERED:
            raise CueError(
                "already_sent",
                f"cue {cue_id!r} already went out to IVS",
                status=409,
                id=cue_id,
                channel=arn,
            )
        raise CueError(
            "not_found",
            f"no cue {cue_id!r} is waiting on {arn}",
            status=404,
            id=cue_id,
            channel=arn,
        )

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
        if self._started:
            self._start_dispatcher(budget)

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start a dispatcher for every account budget known now, and for each new one later."""
        self._started = True
        self._hold_until = self.now() + self.settings.startup_hold
        for budget in self.schedulers:
            self._start_dispatcher(budget)

    def _start_dispatcher(self, budget: tuple[str, str]) -> None:
        region = budget[0]
        self.schedulers[budget].limiter.hold(self._hold_until)
        dispatcher = Dispatcher(
            self.schedulers[budget],
            self._sink,
            region=region,
            timeout=self.settings.ivs_timeout,
            gate=self._gate,
        )
        self.dispatchers[budget] = dispatcher
        dispatcher.start()

    async def drain(self, seconds: float) -> int:
        """Refuse new cues, send what is queued for up to `seconds`; return how many remain."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._empty.wait()
        return self.total_cues

    async def close(self) -> None:
        """Stop sending; cues still queued are dropped with reason `shutdown` and logged."""
        self.draining = True
        dispatchers = list(self.dispatchers.values())
        self.dispatchers.clear()
        for dispatcher in dispatchers:
            await dispatcher.close()
        now = self.now()
        dropped = 0
        for budget, scheduler in self.schedulers.items():
            dropped += scheduler.drop_all(
                list(self._budget_channels(budget)), DropReason.SHUTDOWN, now
            )
        if dropped:
            log.warning(
                "dropped cues that could not be sent before shutdown", extra={"cues": dropped}
            )

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
            self._empty.set()
