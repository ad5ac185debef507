"""The bounded log of accepted PutMetadata payloads, and the listeners that follow one channel."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window `(t - window, t]`, as IVS counts its quotas."""
    ordered = sorted(times)
    worst, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


@dataclass(frozen=True, slots=True)
class MetadataEvent:
    """One accepted PutMetadata call: wall-clock arrival (Unix seconds), channel, payload and the
    access key id that signed it."""

    time: float
    channel_arn: str
    metadata: str
    access_key_id: str | None = None  # the key that signed the call (never its secret)

    def to_json(self) -> dict[str, object]:
        """Return the event as the admin API shows it."""
        return {
            "time": self.time,
            "channelArn": self.channel_arn,
            "metadata": self.metadata,
            "accessKeyId": self.access_key_id,
        }


Listener = Callable[[MetadataEvent], None]


class EventLog:
    """Accepted events in arrival order, the oldest dropped past `max_events`; with listeners."""

    __slots__ = ("_events", "_listeners")

    def __init__(self, max_events: int) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events}")
        self._events: deque[MetadataEvent] = deque(maxlen=max_events)
        self._listeners: dict[str, list[Listener]] = {}

    def __repr__(self) -> str:
        listeners = sum(len(group) for group in self._listeners.values())
        return f"<EventLog events={len(self._events)}/{self._events.maxlen} listeners={listeners}>"

    @property
    def events(self) -> Sequence[MetadataEvent]:
        """Every retained event, oldest first (a live view, not a copy)."""
        return self._events

    def for_channel(self, channel_arn: str) -> list[MetadataEvent]:
        """Return the retained events of one channel, oldest first."""
        return [event for event in self._events if event.channel_arn == channel_arn]

    def append(self, event: MetadataEvent) -> None:
        """Record `event` and hand it to the listeners of its channel."""
        self._events.append(event)
        for listener in tuple(self._listeners.get(event.channel_arn, ())):
            listener(event)

    def clear(self) -> None:
        """Forget every retained event (listeners stay)."""
        self._events.clear()

    def subscribe(self, channel_arn: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each new event of `channel_arn`; returns the unsubscriber."""
        group = self._listeners.setdefault(channel_arn, [])
        group.append(listener)

        def unsubscribe() -> None:
            if listener in group:
                group.remove(listener)
            if not group and self._listeners.get(channel_arn) is group:
                del self._listeners[channel_arn]

        return unsubscribe
