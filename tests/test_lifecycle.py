"""Cue lifecycle with an injected clock: scheduled cues, priority, cancel and state repeats."""

from __future__ import annotations

import orjson
import pytest
from scheduler_harness import Record, cue, make_channel, simulate

from metadata_gateway.core.cues import Priority
from metadata_gateway.core.events import DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import CueState
from metadata_gateway.core.scheduler import BudgetScheduler


def ids(payload: bytes) -> list[str]:
    return [c["i"] for c in orjson.loads(payload)["c"]]


def test_scheduled_cue_goes_out_in_the_first_call_at_or_after_not_before() -> None:
    """A cue held until t=2.5 is sent by the call that starts at 2.5, not a moment before."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(1)
    later = cue(channel, ttl_ms=1000)
    channel.queue.add(later, 0.0, release_at=2.5)
    scheduler.touch(channel, 0.0)
    assert scheduler.step(0.0) == []
    assert scheduler.next_wakeup(0.0) == 2.5
    assert scheduler.step(2.4999) == []
    [dispatch] = scheduler.step(2.5)
    assert dispatch.started == 2.5
    assert [p.cue.id for p in dispatch.batch.cues] == [later.id]


def test_ttl_of_a_scheduled_cue_counts_from_not_before() -> None:
    """A scheduled cue cannot expire while it is held."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(2)
    channel.live = True
    held = cue(channel, ttl_ms=500)
    channel.queue.add(held, 0.0, release_at=10.0)
    scheduler.touch(channel, 0.0)
    calls = simulate(scheduler, until=12.0)
    assert [c.start for c in calls] == [10.0]
    assert not record.dropped


def test_scheduled_cue_waits_for_the_channel_budget_not_longer() -> None:
    """When the channel's window is full at not_before, the cue takes the next free call."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(3)
    for n in range(5):  # five raw cues: five calls at once fill the window
        channel.queue.add(cue(channel, type="raw", data=f"r{n}"), 0.0)
    timed = cue(channel)
    channel.queue.add(timed, 0.0, release_at=0.5)
    scheduler.touch(channel, 0.0)
    calls = simulate(scheduler, until=3.0, latency=0.01)
    timed_call = next(c for c in calls if c.payload.startswith(b"{"))
    assert timed_call.start == pytest.approx(1.01)  # the first call's answer + 1 s


def test_high_priority_channels_go_first_without_starving_the_rest() -> None:
    """Under a saturated account, high-priority channels get 3 turns in 4; others still move."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=4, listener=record)
    urgent = [make_channel(10 + n) for n in range(4)]
    backlog = [make_channel(20 + n) for n in range(4)]
    for ch in backlog:
        for _ in range(20):
            ch.queue.add(cue(ch, type="raw", data="tally", ttl_ms=600_000), 0.0)
        scheduler.touch(ch, 0.0)
    for ch in urgent:
        for _ in range(20):
            ch.queue.add(cue(ch, type="raw", data="Q", priority="high", ttl_ms=600_000), 0.0)
        scheduler.touch(ch, 0.0)
    calls = simulate(scheduler, until=9.99, latency=0.0)
    high = sum(1 for c in calls if c.payload == b"Q")
    low = sum(1 for c in calls if c.payload == b"tally")
    assert high + low == 40
    assert (high, low) == (30, 10)
    assert {c.channel for c in calls if c.payload == b"tally"} == {ch.arn.arn for ch in backlog}


def test_priority_within_a_channel_reorders_the_payload() -> None:
    """A high-priority cue overtakes waiting normal ones in the next payload."""
    scheduler = BudgetScheduler(account_rate=155, listener=Record())
    channel = make_channel(4)
    first, second = cue(channel), cue(channel)
    urgent = cue(channel, priority="high")
    for c in (first, second, urgent):
        channel.queue.add(c, 0.0)
    assert channel.queue.head_priority() is Priority.HIGH
    scheduler.touch(channel, 0.0)
    [dispatch] = scheduler.step(0.0)
    assert ids(dispatch.batch.payload) == [urgent.id, first.id, second.id]


def test_cancel_in_every_state() -> None:
    """Queued, scheduled and repeating cues can be cancelled; sent or unknown ones cannot."""
    scheduler = BudgetScheduler(account_rate=155, listener=Record())
    channel = make_channel(5)
    queue = channel.queue
    queued, scheduled = cue(channel), cue(channel)
    state = cue(channel, type="state", key="quiz:current", data={"q": 1})
    queue.add(queued, 0.0)
    queue.add(scheduled, 0.0, release_at=60.0)
    queue.add(state, 0.0)
    assert queue.cancel(queued.id) is not None
    assert queue.cancel(scheduled.id)[1] is CueState.SCHEDULED  # type: ignore[index]
    scheduler.touch(channel, 0.0)
    [dispatch] = scheduler.step(0.0)
    assert queue.cancel(state.id) is None  # in flight: not in the queue
    scheduler.complete(dispatch, Outcome.OK, 0.01)
    found = queue.cancel(state.id)
    assert found is not None
    assert found[1] is CueState.REPEATING
    assert queue.cancel(state.id) is None
    assert queue.repeating == []


def run_state_show(*, fresh_at: list[float], until: float) -> tuple[Record, list]:  # type: ignore[type-arg]
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(6)
    state = cue(channel, type="state", key="quiz:current", data={"q": 5}, repeat_ms=1000)
    channel.queue.add(state, 0.0)
    scheduler.touch(channel, 0.0)

    def arrive(now: float) -> None:
        channel.queue.add(cue(channel, data={"fresh": now}), now)
        scheduler.touch(channel, now)

    calls = simulate(scheduler, until=until, latency=0.0, arrivals=[(t, arrive) for t in fresh_at])
    return record, calls


def test_state_is_repeated_while_nothing_else_waits() -> None:
    """A state cue goes out, then again every repeat_ms with the same id."""
    record, calls = run_state_show(fresh_at=[], until=3.5)
    assert [c.start for c in calls] == [0.0, 1.0, 2.0, 3.0]
    assert len({tuple(ids(c.payload)) for c in calls}) == 1
    assert len(record.sent) == 1  # receipts for the first send only


def test_state_repeats_ride_along_and_never_delay_fresh_cues() -> None:
    """A fresh cue goes out the moment it arrives; a due repeat rides in its payload."""
    _, calls = run_state_show(fresh_at=[1.5, 2.0], until=3.5)
    assert [c.start for c in calls] == [0.0, 1.0, 1.5, 2.0, 3.0]
    assert len(ids(calls[2].payload)) == 1  # repeat not due at 1.5: the fresh cue alone
    assert len(ids(calls[3].payload)) == 2  # due at 2.0: rides with the fresh cue
    assert len(ids(calls[4].payload)) == 1  # nothing else waits: a call of its own


def test_state_repeats_stop_on_replace_and_on_ttl() -> None:
    """A newer state with the same key replaces the old; a state stops at its TTL."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(7)
    old = cue(channel, type="state", key="k", data={"v": 1}, repeat_ms=1000)
    channel.queue.add(old, 0.0)
    scheduler.touch(channel, 0.0)

    def replace(now: float) -> None:
        channel.queue.add(
            cue(channel, type="state", key="k", data={"v": 2}, repeat_ms=1000, ttl_ms=2500), now
        )
        scheduler.touch(channel, now)

    calls = simulate(scheduler, until=8.0, latency=0.0, arrivals=[(1.5, replace)])
    versions = [orjson.loads(c.payload)["c"][0]["d"]["v"] for c in calls]
    assert [c.start for c in calls] == [0.0, 1.0, 1.5, 2.5, 3.5]
    assert versions == [1, 1, 2, 2, 2]  # TTL 2.5 s from 1.5: no repeat at 4.0 or later
    assert not [r for r in record.dropped if r[2] is DropReason.EXPIRED]


def test_state_repeats_pause_while_the_channel_is_offline() -> None:
    """No repeats go to a channel that IVS says is not broadcasting."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=155, listener=record)
    channel = make_channel(8)
    channel.queue.add(cue(channel, type="state", key="k", data={}, repeat_ms=1000), 0.0)
    scheduler.touch(channel, 0.0)
    calls = simulate(
        scheduler,
        until=5.0,
        latency=0.0,
        answer=lambda d, i: Outcome.OK if i == 0 else Outcome.NOT_BROADCASTING,
    )
    assert [c.start for c in calls] == [0.0, 1.0]
    assert channel.live is False


def test_state_repeats_take_no_account_budget_a_waiting_cue_needs() -> None:
    """With the account saturated by fresh cues, a repeat-only call waits for a free turn."""
    record = Record()
    scheduler = BudgetScheduler(account_rate=2, listener=record)
    stateful, busy = make_channel(30), make_channel(31)
    stateful.queue.add(cue(stateful, type="state", key="k", data={}, repeat_ms=1000), 0.0)
    scheduler.touch(stateful, 0.0)
    for n in range(6):
        busy.queue.add(cue(busy, type="raw", data=f"fresh{n}", ttl_ms=60_000), 0.0)
    scheduler.touch(busy, 0.0)
    calls = simulate(scheduler, until=5.5, latency=0.0)
    busy_calls = [c.start for c in calls if c.channel == busy.arn.arn]
    state_calls = [c.start for c in calls if c.channel == stateful.arn.arn]
    assert busy_calls == [0.0, 1.0, 1.0, 2.0, 2.0, 3.0]
    assert state_calls == [0.0, 3.0, 4.0, 5.0]  # repeats resume once the backlog is gone
