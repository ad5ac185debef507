"""The budget scheduler, driven by a discrete-event simulation with exact times."""

from __future__ import annotations

import orjson
from scheduler_harness import Record, cue, make_channel, max_in_any_window, simulate

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.scheduler import BudgetScheduler


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
    assert scheduler.step(1.4999) == []
    assert not record.dropped
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
