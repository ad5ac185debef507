"""Stream sessions: each time a channel went live, when it stopped, and the IVS events it had.

GetStreamSession and ListStreamSessions answer from here; the EventBridge publisher follows the
same events. The local IVS has no encoder, so a session's ingest and recording configurations
are left out (the model makes every StreamSession member optional).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metadata_gateway.local_ivs.errors import not_found
from metadata_gateway.local_ivs.pagination import paginate
from metadata_gateway.local_ivs.resources import iso_timestamp
from metadata_gateway.local_ivs.validation import (
    check_int_range,
    check_length,
    check_pattern,
)

JsonObject = dict[str, Any]
STATE_CHANGE = "IVS Stream State Change"  # the EventBridge detail-type and StreamEvent type
SESSION_CREATED = "Session Created"
STREAM_START = "Stream Start"
STREAM_END = "Stream End"
SESSION_ENDED = "Session Ended"
MAX_TRUNCATED_EVENTS = 500  # StreamEvents shape: at most 500, most recent first
MAX_SESSION_RESULTS = 100  # MaxStreamResults
DEFAULT_SESSION_RESULTS = 100  # "Default: 100" in ListStreamSessionsRequest's documentation
SESSIONS_KEPT_PER_CHANNEL = 1_000  # IVS keeps sessions for a while; this bounds the memory
STREAM_ID_LENGTH = 26  # StreamId shape
_STREAM_ID_PATTERN = re.compile(r"st-[a-zA-Z0-9]+")  # StreamId shape
# Positions grow with time; listings page on ascending positions, so newest-first pages on this
# minus the position (any number above every position works).
_NEWEST_FIRST = 2**53


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One IVS event of a stream session (a StreamEvent); `time` is Unix seconds."""

    name: str
    time: float
    type: str = STATE_CHANGE

    def to_json(self) -> JsonObject:
        """Return the StreamEvent shape."""
        return {"name": self.name, "type": self.type, "eventTime": iso_timestamp(self.time)}


@dataclass(slots=True)
class StreamSession:
    """One broadcast on one channel: from its stream's start to its end (None while live)."""

    channel_arn: str
    stream_id: str
    start_time: float
    position: int
    channel: JsonObject  # the channel's configuration when it went live
    end_time: float | None = None
    events: deque[SessionEvent] = field(default_factory=lambda: deque(maxlen=MAX_TRUNCATED_EVENTS))

    def to_json(self) -> JsonObject:
        """Return the StreamSession shape that GetStreamSession answers."""
        answer: JsonObject = {
            "streamId": self.stream_id,
            "startTime": iso_timestamp(self.start_time),
            "channel": self.channel,
            "truncatedEvents": [event.to_json() for event in reversed(self.events)],
        }
        if self.end_time is not None:
            answer["endTime"] = iso_timestamp(self.end_time)
        return answer

    def to_summary(self) -> JsonObject:
        """Return the StreamSessionSummary shape that ListStreamSessions answers."""
        answer: JsonObject = {
            "streamId": self.stream_id,
            "startTime": iso_timestamp(self.start_time),
            "hasErrorEvent": False,  # the local IVS has no quota breaches nor failures
        }
        if self.end_time is not None:
            answer["endTime"] = iso_timestamp(self.end_time)
        return answer


SessionListener = Callable[[StreamSession, SessionEvent], None]


class SessionBook:
    """Every channel's stream sessions, newest last, and the listeners of their events."""

    def __init__(self) -> None:
        self._sessions: dict[str, deque[StreamSession]] = {}
        self._listeners: list[SessionListener] = []

    def __repr__(self) -> str:
        live = sum(1 for s in self._sessions.values() if s and s[-1].end_time is None)
        return f"<SessionBook channels={len(self._sessions)} live={live}>"

    def follow(self, listener: SessionListener) -> Callable[[], None]:
        """Call `listener(session, event)` for every event from now on; returns the unfollow."""
        self._listeners.append(listener)

        def unfollow() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unfollow

    def started(
        self, channel_arn: str, stream_id: str, start: float, position: int, channel: JsonObject
    ) -> StreamSession:
        """A stream went live: a new session, with Session Created and Stream Start."""
        session = StreamSession(channel_arn, stream_id, start, position, channel)
        kept = self._sessions.setdefault(channel_arn, deque(maxlen=SESSIONS_KEPT_PER_CHANNEL))
        kept.append(session)
        self._record(session, SESSION_CREATED, start)
        self._record(session, STREAM_START, start)
        return session

    def ended(self, channel_arn: str, end: float) -> StreamSession | None:
        """The channel's live stream stopped: Stream End and Session Ended close its session."""
        kept = self._sessions.get(channel_arn)
        if not kept or kept[-1].end_time is not None:
            return None
        session = kept[-1]
        session.end_time = end
        self._record(session, STREAM_END, end)
        self._record(session, SESSION_ENDED, end)
        return session

    def forget(self, channel_arn: str) -> None:
        """Drop a deleted channel's sessions."""
        self._sessions.pop(channel_arn, None)

    def _record(self, session: StreamSession, name: str, time: float) -> None:
        event = SessionEvent(name, time)
        session.events.append(event)
        for listener in tuple(self._listeners):
            listener(session, event)

    # -- operations -------------------------------------------------------------------------

    def get_stream_session(self, channel_arn: str, stream_id: str | None) -> JsonObject:
        """GetStreamSession: the named session, or the channel's most recent one."""
        if stream_id is not None:
            check_length("streamId", stream_id, STREAM_ID_LENGTH, STREAM_ID_LENGTH)
            check_pattern("streamId", stream_id, _STREAM_ID_PATTERN)
        kept = self._sessions.get(channel_arn, deque())
        if stream_id is None:
            if not kept:
                raise not_found(f"No stream session found for channel {channel_arn}")
            return {"streamSession": kept[-1].to_json()}
        for session in kept:
            if session.stream_id == stream_id:
                return {"streamSession": session.to_json()}
        raise not_found(f"Stream session {stream_id} not found for channel {channel_arn}")

    def list_stream_sessions(
        self, channel_arn: str, *, next_token: str | None, max_results: int | None
    ) -> JsonObject:
        """ListStreamSessions: the channel's sessions, newest first, a page at a time."""
        limit = DEFAULT_SESSION_RESULTS
        if max_results is not None:
            check_int_range("maxResults", max_results, 1, MAX_SESSION_RESULTS)
            limit = max_results
        newest_first = list(reversed(self._sessions.get(channel_arn, deque())))
        page, token = paginate(
            newest_first,
            position_of=lambda session: _NEWEST_FIRST - session.position,
            listing=f"stream-sessions-{channel_arn.rsplit('/', 1)[-1]}",
            next_token=next_token,
            max_results=limit,
        )
        answer: JsonObject = {"streamSessions": [session.to_summary() for session in page]}
        if token:
            answer["nextToken"] = token
        return answer
