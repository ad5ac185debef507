"""The budget scheduler, driven by a discrete-event simulation with exact times."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from metadata_gateway.arn import parse_channel_arn
from metadata_gateway.channel import Channel
from metadata_gateway.channel_queue import Batch, Pending
from metadata_gateway.cues import Cue, parse_cue
from metadata_gateway.events import DropReason
from metadata_gateway.ivs import Outcome
from metadata_gateway.scheduler import BudgetScheduler, Dispatch

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


def test_burst_on_one_channel_arrives_complete_in_order_within_5_per_second() -> None:
    """300 small cues at once: all delivered once, in order, <= 5 calls in any 1 s, >= 4.8/s."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(1)
    cues = [cue(channel, ttl_ms=60_000, data={"q": i, "pad": "x" * 60}) for i in range(300)]
    for c in cues:
        channel.queue.add(c, 0.0)
    scheduler.touch(channel, 0.0)
    calls = simulate(scheduler, until=60.0)
    assert [i for _, i, _ in record.sent] == [c.id for c in cues]
    assert not record.dropped
    assert all(len(c.payload) <= 1024 for c in calls)
    assert max_in_any_window(calls) == 5
    busy = calls[-1].end - calls[0].start
    assert len(calls) / busy >= 4.8 or len(calls) <= 5
    delivered = [orjson.loads(c.payload)["c"] for c in calls]
    assert [item["d"]["q"] for batch in delivered for item in batch] == list(range(300))


def test_account_budget_is_shared_fairly_and_never_exceeded() -> None:
    """40 busy channels under an account rate of 20/s: <= 20 calls in any 1 s, equal shares."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=20, listener=record)
    channels = [make_channel(n) for n in range(40)]
    for ch in channels:
        for i in range(200):
            ch.queue.add(cue(ch, ttl_ms=600_000, data={"i": i, "pad": "y" * 200}), 0.0)
        scheduler.touch(ch, 0.0)
    calls = simulate(scheduler, until=20.0)
    assert max_in_any_window(calls) <= 20
    per_channel = [sum(1 for c in calls if c.channel == ch.arn.arn) for ch in channels]
    assert max(per_channel) - min(per_channel) <= 1
    assert len(calls) >= 20 * 20 * 0.95


def test_throttled_call_is_requeued_at_front_and_channel_backs_off() -> None:
    """On ThrottlingException the cues go back first and the channel waits a second."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(2)
    first, second = cue(channel), cue(channel)
    channel.queue.add(first, 0.0)
    scheduler.touch(channel, 0.0)
    [dispatch] = scheduler.step(0.0)
    channel.queue.add(second, 0.001)
    scheduler.touch(channel, 0.001)
    scheduler.complete(dispatch, Outcome.THROTTLED, 0.002)
    assert [p.cue.id for p in channel.queue] == [first.id, second.id]
    assert scheduler.step(0.5) == []
    assert scheduler.next_wakeup(0.5) == 1.002
    [retry] = scheduler.step(1.002)
    assert [p.cue.id for p in retry.batch.cues] == [first.id, second.id]


def test_offline_channel_keeps_cues_until_ttl_and_probes_every_few_seconds() -> None:
    """ChannelNotBroadcasting: cues are held, probed again after 3 s, expired at their TTL."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(3)
    held = cue(channel, ttl_ms=20_000)
    short = cue(channel, ttl_ms=4_000)
    channel.queue.add(held, 0.0)
    channel.queue.add(short, 0.0)
    scheduler.touch(channel, 0.0)
    calls = simulate(
        scheduler,
        until=10.0,
        answer=lambda d, i: Outcome.NOT_BROADCASTING if d.started < 7 else Outcome.OK,
    )
    assert channel.live is True
    assert [round(c.start, 3) for c in calls] == [0.0, 3.002, 6.004, 9.006]
    assert record.dropped == [(channel.arn.arn, short.id, DropReason.EXPIRED)]
    assert [i for _, i, _ in record.sent] == [held.id]


def test_expiry_fires_without_a_send() -> None:
    """A channel that cannot send still drops cues exactly at their TTL."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(4)
    channel.backoff_until = 100.0
    doomed = cue(channel, ttl_ms=1_500)
    channel.queue.add(doomed, 0.0)
    scheduler.touch(channel, 0.0)
    assert scheduler.next_wakeup(0.0) == 1.5
    assert scheduler.step(1.4999) == [] and not record.dropped
    scheduler.step(1.5)
    assert record.dropped == [(channel.arn.arn, doomed.id, DropReason.EXPIRED)]
    assert len(channel.queue) == 0


def test_permanent_errors_drop_cues_with_reason() -> None:
    """ResourceNotFound, AccessDenied and Validation drop the call's cues as ivs_error."""
    for outcome in (Outcome.NOT_FOUND, Outcome.ACCESS_DENIED, Outcome.VALIDATION):
        record = Record()
        scheduler = BudgetScheduler(account_rate=155, listener=record)
        channel = make_channel(5)
        lost = cue(channel)
        channel.queue.add(lost, 0.0)
        scheduler.touch(channel, 0.0)
        [dispatch] = scheduler.step(0.0)
        scheduler.complete(dispatch, outcome, 0.01, "nope")
        assert record.dropped == [(channel.arn.arn, lost.id, DropReason.IVS_ERROR)]
        assert channel.last_error == f"{outcome.value}: nope"


def test_server_errors_retry_with_growing_backoff_until_ttl() -> None:
    """5xx answers are retried, 0.2 s, 0.4 s, 0.8 s apart... while the TTL lasts."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(6)
    channel.queue.add(cue(channel, ttl_ms=2_000), 0.0)
    scheduler.touch(channel, 0.0)
    calls = simulate(scheduler, until=5.0, latency=0.0, answer=lambda d, i: Outcome.SERVER_ERROR)
    assert [round(c.start, 3) for c in calls] == [0.0, 0.2, 0.6, 1.4]
    assert [r for _, _, r in record.dropped] == [DropReason.EXPIRED]
