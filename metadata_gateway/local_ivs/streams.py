"""Live streams: which channels are broadcasting, with what stream id and health, and who wants
to hear when one starts or stops (the playback, the admin API)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from metadata_gateway.local_ivs.errors import IvsError
from metadata_gateway.local_ivs.pagination import paginate
from metadata_gateway.local_ivs.resources import LiveStream

StreamListener = Callable[[str, bool], None]  # (channel ARN, live): a stream started or stopped


class LiveStreams:
    """The live stream of each broadcasting channel, in the order they started."""

    def __init__(
        self,
        *,
        new_stream_id: Callable[[], str],
        wall_clock: Callable[[], float],
        positions: Iterator[int],
    ) -> None:
        self._new_stream_id = new_stream_id
        self._wall_clock = wall_clock
        self._positions = positions
        self._streams: dict[str, LiveStream] = {}
        self._listeners: list[StreamListener] = []

    def __repr__(self) -> str:
        return f"<LiveStreams live={len(self._streams)} listeners={len(self._listeners)}>"

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, channel_arn: object) -> bool:
        return channel_arn in self._streams

    def start(
        self,
        channel_arn: str,
        health: str,
        *,
        on_start: Callable[[LiveStream], object] | None = None,
    ) -> LiveStream:
        """A stream goes live on the channel (`on_start` hears of it before the listeners), or
        the live one's health changes."""
        stream = self._streams.get(channel_arn)
        if stream is not None:
            stream = self._streams[channel_arn] = dataclasses.replace(stream, health=health)
            return stream
        stream = self._streams[channel_arn] = LiveStream(
            channel_arn=channel_arn,
            stream_id=self._new_stream_id(),
            start_time=self._wall_clock(),
            position=next(self._positions),
            health=health,
        )
        if on_start is not None:
            on_start(stream)
        self._tell(channel_arn, live=True)
        return stream

    def live(self, channel_arn: str) -> LiveStream:
        """The channel's live stream; ChannelNotBroadcasting without one."""
        stream = self._streams.get(channel_arn)
        if stream is None:
            raise IvsError("ChannelNotBroadcasting", f"Channel {channel_arn} is not broadcasting")
        return stream

    def page(
        self,
        *,
        health: str | None,
        visible: Callable[[str], bool],
        next_token: str | None,
        max_results: int,
    ) -> dict[str, Any]:
        """A ListStreams answer: the live streams in the order they started, of one health, of
        channels `visible` to the caller."""
        streams = sorted(self._streams.values(), key=_position)
        matching = [
            stream
            for stream in streams
            if (health is None or stream.health == health) and visible(stream.channel_arn)
        ]
        page, token = paginate(
            matching,
            position_of=_position,
            listing="streams",
            next_token=next_token,
            max_results=max_results,
        )
        answer: dict[str, Any] = {"streams": [stream.to_summary() for stream in page]}
        if token:
            answer["nextToken"] = token
        return answer

    def stop(self, channel_arn: str, *, on_stop: Callable[[], object] | None = None) -> None:
        """End the live stream (`on_stop` hears of it before the listeners);
        ChannelNotBroadcasting if there is none."""
        self.live(channel_arn)
        del self._streams[channel_arn]
        if on_stop is not None:
            on_stop()
        self._tell(channel_arn, live=False)

    def watch(self, listener: StreamListener) -> Callable[[], None]:
        """Call `listener(arn, live)` as streams start and stop (now for those already live)."""
        self._listeners.append(listener)
        for channel_arn in list(self._streams):
            listener(channel_arn, True)

        def unwatch() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unwatch

    def _tell(self, channel_arn: str, *, live: bool) -> None:
        for listener in tuple(self._listeners):
            listener(channel_arn, live)


def _position(stream: LiveStream) -> int:
    return stream.position
