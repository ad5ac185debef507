"""IVS stream state events: parsing EventBridge's envelope, and deciding which ones are news.

IVS delivers "IVS Stream State Change" events at best effort: late, repeated or out of order. A
channel's newest event, by its own `time`, decides; an older one changes nothing. EventBridge
stamps `time` in whole seconds, so within one second the order of a stream's life (created,
start, end, ended) breaks ties, and an event of a stream already seen ending cannot revive it.
Pure: times are numbers, nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import orjson

from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.moments import aware_timestamp

SOURCE = "aws.ivs"
DETAIL_TYPE = "IVS Stream State Change"
# Where each event stands in one stream's life, for events stamped with the same second; and
# what it says about the channel: live (True), offline (False) or nothing (None).
_EVENTS: dict[str, tuple[int, bool | None]] = {
    "Session Created": (0, None),  # before video: not live yet
    "Stream Start": (1, True),
    "Stream Takeover": (1, True),  # another encoder took over: a new stream, live
    "Takeover Failure": (1, None),
    "Stream Failure": (2, False),
    "Stream End": (2, False),
    "Session Ended": (3, False),
}
ENDED_KEPT = 4  # stream ids remembered as ended per channel: enough for quick restarts


class SkipReason(StrEnum):
    """Why an event changed nothing; the `reason` label of the skipped-events metric."""

    MALFORMED = "malformed"  # not JSON, or the envelope lacks a field IVS always sends
    NOT_STREAM_STATE = "not_stream_state"  # another source or detail-type
    NOT_STATE = "not_state"  # an event name that says nothing about being live
    UNKNOWN_CHANNEL = "unknown_channel"  # a channel this gateway has never sent to
    STALE = "stale"  # older than what the channel already knows
    DUPLICATE = "duplicate"  # the same event again


class EventSkipped(Exception):
    """An event that changes nothing, and why."""

    def __init__(self, reason: SkipReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One parsed IVS Stream State Change; `time` is Unix seconds."""

    channel_arn: str
    name: str
    stream_id: str
    time: float

    @property
    def live(self) -> bool | None:
        """True if it says the channel is live, False if offline, None if neither."""
        return _EVENTS.get(self.name, (0, None))[1]

    @property
    def rank(self) -> int:
        """Its place in one stream's life, for ties within a second."""
        return _EVENTS.get(self.name, (0, None))[0]


def parse_event(body: str | bytes) -> StreamEvent:
    """Parse an SQS message body holding an EventBridge event; raise `EventSkipped` otherwise."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EventSkipped(SkipReason.MALFORMED, "not JSON") from None
    if not isinstance(event, dict):
        raise EventSkipped(SkipReason.MALFORMED, "not a JSON object")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise EventSkipped(SkipReason.NOT_STREAM_STATE)
    resources, detail = event.get("resources"), event.get("detail")
    if not isinstance(resources, list) or not resources or not isinstance(detail, dict):
        raise EventSkipped(SkipReason.MALFORMED, "no resources or detail")
    arn, name, stream_id = resources[0], detail.get("event_name"), detail.get("stream_id")
    if not isinstance(arn, str) or parse_channel_arn(arn) is None:
        raise EventSkipped(SkipReason.MALFORMED, "resources[0] is not a channel ARN")
    if not isinstance(name, str) or not isinstance(stream_id, str) or not stream_id:
        raise EventSkipped(SkipReason.MALFORMED, "no detail.event_name or detail.stream_id")
    return StreamEvent(arn, name, stream_id, _parse_time(event.get("time")))


def _parse_time(value: object) -> float:
    if isinstance(value, str):
        moment = aware_timestamp(value)
        if moment is not None:
            return moment
    raise EventSkipped(SkipReason.MALFORMED, "time is not an ISO 8601 UTC time")


@dataclass(slots=True)
class ChannelStream:
    """What the events have said about one channel: the newest one, and streams seen ending."""

    time: float
    rank: int
    name: str
    stream_id: str
    live: bool
    ended: deque[str] = field(default_factory=lambda: deque(maxlen=ENDED_KEPT))


@dataclass(frozen=True, slots=True)
class Change:
    """What an event that was news changes: whether the channel is live now, and the stream
    whose session ended with it (its own, or the one a new stream replaced), if any."""

    live: bool
    ended_stream: str | None


class StreamBook:
    """Each channel's newest stream event; `apply` says whether another one is news."""

    def __init__(self) -> None:
        self._channels: dict[str, ChannelStream] = {}

    def __repr__(self) -> str:
        live = sum(1 for c in self._channels.values() if c.live)
        return f"<StreamBook channels={len(self._channels)} live={live}>"

    def __len__(self) -> int:
        return len(self._channels)

    def stream_of(self, channel_arn: str) -> str | None:
        """The stream id the channel's newest event named, if any."""
        known = self._channels.get(channel_arn)
        return known.stream_id if known is not None else None

    def apply(self, event: StreamEvent) -> Change:
        """Record `event` if it is news and return what it changes; raise `EventSkipped`."""
        live = event.live
        if live is None:
            raise EventSkipped(SkipReason.NOT_STATE, event.name)
        known = self._channels.get(event.channel_arn)
        if known is None:
            self._channels[event.channel_arn] = ChannelStream(
                event.time, event.rank, event.name, event.stream_id, live
            )
            if not live:
                self._channels[event.channel_arn].ended.append(event.stream_id)
            return Change(live, None if live else event.stream_id)
        self._check_news(known, event, live)
        ended: str | None = None
        if not live:
            ended = event.stream_id if event.stream_id not in known.ended else None
            if event.stream_id not in known.ended:
                known.ended.append(event.stream_id)
        elif known.live and known.stream_id != event.stream_id:
            ended = known.stream_id  # a new stream replaced the one that was live
            known.ended.append(known.stream_id)
        known.time, known.rank, known.name = event.time, event.rank, event.name
        known.stream_id, known.live = event.stream_id, live
        return Change(live, ended)

    @staticmethod
    def _check_news(known: ChannelStream, event: StreamEvent, live: bool) -> None:
        same_stream = event.stream_id == known.stream_id
        if same_stream and event.name == known.name and event.time == known.time:
            raise EventSkipped(SkipReason.DUPLICATE)
        if event.time < known.time:
            raise EventSkipped(SkipReason.STALE, "older than the channel's newest event")
        if live and event.stream_id in known.ended:
            raise EventSkipped(SkipReason.STALE, "that stream already ended")
        if event.time == known.time:
            if same_stream and event.rank <= known.rank:
                raise EventSkipped(SkipReason.STALE, "earlier in the stream's life")
            if not same_stream and not live and known.live:
                # Within one second, another stream's end cannot be newer than this start.
                raise EventSkipped(SkipReason.STALE, "another stream is live")
