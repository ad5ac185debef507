"""A discrete-event simulation of the dispatcher, for exact scheduler tests."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.channel import Channel
from metadata_gateway.core.cues import Cue, parse_cue
from metadata_gateway.core.events import DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, Pending
from metadata_gateway.core.scheduler import BudgetScheduler, Dispatch

_ids = itertools.count()


def arn(n: int) -> str:
    return f"arn:aws:ivs:us-west-2:123456789012:channel/ch{n:010d}"


def make_channel(n: int, rate: int = 5) -> Channel:
    parsed = parse_channel_arn(arn(n))
    assert parsed is not None
    return Channel(parsed, rate=rate, margin=0.0)


def cue(channel: Channel, **fields: object) -> Cue:
    obj: dict[str, object] = {"channel": channel.arn.arn, "type": "custom", "data": {"n": 1}}
    obj.update(fields)
    return parse_cue(obj, aliases={}, new_id=lambda: f"c{next(_ids)}")


@dataclass
class Record:
    """A `DeliveryListener` that writes everything down."""

    sent: list[tuple[str, str, float]] = field(default_factory=list)
    dropped: list[tuple[str, str, DropReason]] = field(default_factory=list)
    calls: list[tuple[Outcome, int]] = field(default_factory=list)

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        self.sent += [(channel, p.cue.id, now) for p in cues]

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        self.dropped += [(channel, p.cue.id, reason) for p in cues]

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        self.calls.append((outcome, len(batch.payload)))


@dataclass(frozen=True)
class Call:
    channel: str
    start: float
    end: float
    payload: bytes


def simulate(
    scheduler: BudgetScheduler,
    until: float,
    *,
    latency: float = 0.002,
    answer: Callable[[Dispatch, int], Outcome] = lambda d, i: Outcome.OK,
    arrivals: Sequence[tuple[float, Callable[[float], None]]] = (),
) -> list[Call]:
    """Run the scheduler as the dispatcher would, calls answered after `latency`."""
    now = 0.0
    flying: list[tuple[float, int, Dispatch]] = []
    pending_arrivals = sorted(arrivals, key=lambda a: a[0])
    calls: list[Call] = []
    counter = itertools.count()
    while now <= until:
        while pending_arrivals and pending_arrivals[0][0] <= now:
            pending_arrivals.pop(0)[1](now)
        while flying and flying[0][0] <= now:
            end, n, dispatch = heapq.heappop(flying)
            outcome = answer(dispatch, n)
            scheduler.complete(dispatch, outcome, end)
            calls.append(
                Call(dispatch.channel.arn.arn, dispatch.started, end, dispatch.batch.payload)
            )
        for dispatch in scheduler.step(now):
            heapq.heappush(flying, (now + latency, next(counter), dispatch))
        candidates = [scheduler.next_wakeup(now)]
        if flying:
            candidates.append(flying[0][0])
        if pending_arrivals:
            candidates.append(pending_arrivals[0][0])
        upcoming = min(candidates)
        if upcoming == math.inf:
            break
        now = max(now, upcoming)
    return calls


def max_in_any_window(calls: Sequence[Call], window: float = 1.0) -> int:
    """The most calls whose possible arrival intervals fit in one window (worst case: starts)."""
    worst = 0
    for times in ([c.start for c in calls], [c.end for c in calls]):
        times.sort()
        j = 0
        for i, t in enumerate(times):
            while times[j] <= t - window:
                j += 1
            worst = max(worst, i - j + 1)
    return worst
