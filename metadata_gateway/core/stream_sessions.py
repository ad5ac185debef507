"""Each channel's broadcast as the gateway learns it: IVS's stream events first, PutMetadata's
ChannelNotBroadcasting answers as the fallback, and what a session's end means for its cues.

When a stream session ends, held and scheduled cues stay (they go out in the next broadcast if
their TTL allows), and state cues stop repeating unless they were sent with `persist`. A stream
start sends the channel's held cues at its next call opportunity instead of after the probe
wait; while the events queue answers, offline channels are probed less often.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.stream_state import (
    Change,
    EventSkipped,
    SkipReason,
    StreamBook,
    StreamEvent,
)

if TYPE_CHECKING:
    from metadata_gateway.core.channel import Channel
    from metadata_gateway.core.gateway import Gateway

# The queue answered a receive within this long: events are flowing. Twice the long poll's
# 20 s, so one slow answer does not make probing fast again.
EVENTS_FRESH_S = 45.0


class StreamSessions:
    """Applies stream events and not-broadcasting answers to the gateway's channels."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.book = StreamBook()
        self._live_at: dict[str, float] = {}  # loop time of each channel's last start event
        self._queue_answered_at = -math.inf

    def __repr__(self) -> str:
        return f"<StreamSessions {self.book!r} flowing={self._queue_answered_at > -math.inf}>"

    def queue_answered(self, now: float) -> None:
        """The events queue answered a receive at `now` (with or without events)."""
        self._queue_answered_at = now

    def events_flowing(self, now: float) -> bool:
        """Whether the events queue has answered recently enough to slow the probes down."""
        return now - self._queue_answered_at <= EVENTS_FRESH_S

    def probe_interval(self, now: float) -> float:
        """How long an offline channel waits before PutMetadata tries it again."""
        settings = self._gateway.settings
        if self.events_flowing(now):
            return max(settings.offline_probe_interval, settings.events_probe_interval)
        return settings.offline_probe_interval

    def apply(self, event: StreamEvent, now: float) -> Change:
        """Act on one stream event at loop time `now`; raise `EventSkipped` if it is not news."""
        channel = self._gateway.channels.get(event.channel_arn)
        if channel is None:
            raise EventSkipped(SkipReason.UNKNOWN_CHANNEL)
        change = self.book.apply(event)
        if change.ended_stream is not None:
            self.end_session(channel, now)
        if change.live:
            self._went_live(channel, now)
        else:
            self._went_offline(channel, now)
        return change

    def not_broadcasting(self, channel: Channel, started: float, now: float) -> None:
        """IVS answered ChannelNotBroadcasting to a call that started at `started`."""
        self.end_session(channel, now)
        live_at = self._live_at.get(channel.arn.arn)
        if live_at is not None and live_at >= started:
            # The call left before its stream's start event arrived: no reason to wait.
            channel.live = True
            channel.backoff_until = now
        elif self.events_flowing(now):
            channel.backoff_until = max(channel.backoff_until, now + self.probe_interval(now))

    def end_session(self, channel: Channel, now: float) -> None:
        """The channel's stream session is over: its states stop repeating, unless persistent."""
        ended = [p for p in channel.queue.repeating if not p.cue.persist]
        self._gateway.drop_repeating(channel, ended, DropReason.SESSION_ENDED, now)

    def _went_live(self, channel: Channel, now: float) -> None:
        self._live_at[channel.arn.arn] = now
        channel.live = True
        channel.failures = 0
        channel.backoff_until = 0.0
        self._wake(channel, now)

    def _went_offline(self, channel: Channel, now: float) -> None:
        self._live_at.pop(channel.arn.arn, None)
        channel.live = False
        channel.backoff_until = max(channel.backoff_until, now + self.probe_interval(now))
        self._wake(channel, now)

    def _wake(self, channel: Channel, now: float) -> None:
        budget = channel.arn.budget
        self._gateway.schedulers[budget].wake(channel, now)
        self._gateway.observer.work(budget)  # the engine wakes the budget's dispatcher
