"""What stream events and not-broadcasting answers do to a gateway's channels, on a moved clock."""

from __future__ import annotations

from typing import Any

from conftest import FakeClock

from metadata_gateway.config import Settings
from metadata_gateway.core.events import DropReason
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.scheduler import Dispatch
from metadata_gateway.core.stream_state import StreamEvent
from metadata_gateway.core.validation import CueRules, parse_cues
from metadata_gateway.intake.local import LocalIntake
from metadata_gateway.intake.seam import Accepted

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/AbCdef1G2hij"
A, B = "st-" + "A" * 23, "st-" + "B" * 23
PROBE_S = 30.0


def gateway(clock: FakeClock) -> Gateway:
    settings = Settings(
        channels={"show": ARN}, offline_probe_interval=PROBE_S, insecure_no_auth=True
    )
    return Gateway(settings, clock=clock, wall_clock=lambda: 1_000.0 + clock())


def submit(gw: Gateway, objs: list[dict[str, Any]]) -> list[Accepted]:
    """Queue cues as the HTTP API does, without an event loop (the test settles calls)."""
    rules = CueRules(aliases=gw.settings.channels, wall_clock=gw.wall_clock)
    return LocalIntake(gw).keep_now(parse_cues(objs, batch=False, rules=rules))


def step(gw: Gateway, now: float) -> list[Dispatch]:
    return gw.schedulers[gw.channel(ARN).arn.budget].step(now)


def settle(gw: Gateway, dispatch: Dispatch, outcome: Outcome, now: float) -> None:
    gw.schedulers[dispatch.channel.arn.budget].complete(dispatch, outcome, now)


def test_a_stream_start_sends_held_cues_at_once_not_after_the_probe() -> None:
    """A cue refused ChannelNotBroadcasting waits the 30 s probe; a Stream Start event lets
    the very next step send it."""
    clock = FakeClock(0.0)
    gw = gateway(clock)
    submit(gw, [{"channel": "show", "type": "custom", "data": {"n": 1}}])
    (first,) = step(gw, 0.0)
    settle(gw, first, Outcome.NOT_BROADCASTING, 0.01)
    assert step(gw, 1.0) == []
    assert gw.channel(ARN).backoff_until == 0.01 + PROBE_S
    gw.streams.apply(StreamEvent(ARN, "Stream Start", A, 1_001.0), 1.0)
    (again,) = step(gw, 1.0)
    assert again.batch.cues == first.batch.cues
    assert gw.channel(ARN).live is True


def test_a_stream_end_stops_non_persistent_states_and_keeps_the_rest() -> None:
    """At a session's end a repeating state stops (dropped session_ended), a persist state goes
    on repeating into the next session, and a held cue waits for it."""
    clock = FakeClock(0.0)
    gw = gateway(clock)
    dropped: list[tuple[str, DropReason]] = []

    class Listen:
        def cues_sent(self, *args: object) -> None: ...
        def call_finished(self, *args: object) -> None: ...
        def cues_dropped(self, channel: str, cues: list, reason: DropReason, now: float) -> None:  # type: ignore[type-arg]
            dropped.extend((p.cue.id, reason) for p in cues)

    gw.listeners.append(Listen())  # type: ignore[arg-type]
    gw.streams.apply(StreamEvent(ARN, "Stream Start", A, 1_000.0), 0.0)
    submit(
        gw,
        [
            {"channel": "show", "type": "state", "key": "q", "data": {}, "id": "plain"},
            {
                "channel": "show",
                "type": "state",
                "key": "s",
                "data": {},
                "id": "kept",
                "persist": True,
            },
        ],
    )
    (call,) = step(gw, 0.0)
    settle(gw, call, Outcome.OK, 0.01)
    assert {p.cue.id for p in gw.channel(ARN).queue.repeating} == {"plain", "kept"}
    gw.streams.apply(StreamEvent(ARN, "Stream End", A, 1_010.0), 10.0)
    assert dropped == [("plain", DropReason.SESSION_ENDED)]
    assert [p.cue.id for p in gw.channel(ARN).queue.repeating] == ["kept"]
    submit(gw, [{"channel": "show", "type": "custom", "data": {}, "id": "held"}])
    assert step(gw, 11.0) == []  # offline: held until the next session (or the probe)
    gw.streams.apply(StreamEvent(ARN, "Stream Start", B, 1_020.0), 20.0)
    (next_session,) = step(gw, 20.0)
    assert [p.cue.id for p in next_session.batch.cues] == ["held"]
    assert [p.cue.id for p in next_session.batch.repeats] == ["kept"]


def test_not_broadcasting_ends_the_session_without_events() -> None:
    """Without events, IVS's ChannelNotBroadcasting is the session's end: states stop."""
    clock = FakeClock(0.0)
    gw = gateway(clock)
    submit(gw, [{"channel": "show", "type": "state", "key": "q", "data": {}, "id": "plain"}])
    (call,) = step(gw, 0.0)
    settle(gw, call, Outcome.OK, 0.01)
    submit(gw, [{"channel": "show", "type": "custom", "data": {}}])
    (probe,) = step(gw, 0.3)
    settle(gw, probe, Outcome.NOT_BROADCASTING, 0.31)
    assert gw.channel(ARN).queue.repeating == []
    assert gw.total_cues == 1  # the custom cue is held, the state's room was already free


def test_a_call_that_raced_the_start_event_is_retried_at_once() -> None:
    """A call sent before the start event and refused after it waits no probe."""
    clock = FakeClock(0.0)
    gw = gateway(clock)
    submit(gw, [{"channel": "show", "type": "custom", "data": {}}])
    (call,) = step(gw, 0.0)
    gw.streams.apply(StreamEvent(ARN, "Stream Start", A, 1_000.0), 0.005)
    settle(gw, call, Outcome.NOT_BROADCASTING, 0.01)
    assert len(step(gw, 0.21)) == 1  # only the channel's own 5/s limit spaced it


def test_probing_slows_while_the_events_queue_answers() -> None:
    """Offline channels are probed every offline_probe_interval, or every
    events_probe_interval (if longer) while the queue has answered within 45 s."""
    clock = FakeClock(0.0)
    gw = Gateway(
        Settings(channels={"show": ARN}, offline_probe_interval=3.0, events_probe_interval=20.0),
        clock=clock,
    )
    assert gw.streams.probe_interval(0.0) == 3.0
    gw.streams.queue_answered(0.0)
    assert gw.streams.probe_interval(45.0) == 20.0
    assert gw.streams.probe_interval(45.1) == 3.0
