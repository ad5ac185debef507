"""Live followers of one channel's accepted metadata, each with a bounded queue of its own."""

from __future__ import annotations

import asyncio
import logging

from metadata_gateway.local_ivs.events import MetadataEvent
from metadata_gateway.local_ivs.state import LocalIvsState

logger = logging.getLogger(__name__)

# A viewer this far behind is too slow to matter; dropping keeps the PutMetadata path O(1).
VIEWER_BUFFER = 1_000


class Viewer:
    """One follower of a channel: events queue up until read, and `close` ends the iteration."""

    __slots__ = ("_closed", "_queue", "_unsubscribe", "channel_arn", "dropped")

    def __init__(self, state: LocalIvsState, channel_arn: str) -> None:
        self.channel_arn = channel_arn
        self.dropped = 0
        self._closed = False
        self._queue: asyncio.Queue[MetadataEvent | None] = asyncio.Queue(VIEWER_BUFFER)
        self._unsubscribe = state.subscribe(channel_arn, self._offer)

    def __repr__(self) -> str:
        return (
            f"<Viewer {self.channel_arn} queued={self._queue.qsize()}"
            f" dropped={self.dropped} closed={self._closed}>"
        )

    def _offer(self, event: MetadataEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def close(self) -> None:
        """Stop following; a waiting `next_event` returns None at once."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        # Make room for the end marker, so a full queue cannot hide the close.
        while self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(None)

    async def next_event(self) -> MetadataEvent | None:
        """Return the next event, or None once the viewer is closed."""
        if self._closed and self._queue.empty():
            return None
        return await self._queue.get()


class ViewerHub:
    """Every open viewer, so server shutdown can end their streams instead of waiting on them."""

    __slots__ = ("_state", "_viewers")

    def __init__(self, state: LocalIvsState) -> None:
        self._state = state
        self._viewers: set[Viewer] = set()

    def __repr__(self) -> str:
        return f"<ViewerHub viewers={len(self._viewers)}>"

    def __len__(self) -> int:
        return len(self._viewers)

    def open(self, channel_arn: str) -> Viewer:
        """Start following `channel_arn`; the caller must `release` the viewer when done."""
        viewer = Viewer(self._state, channel_arn)
        self._viewers.add(viewer)
        return viewer

    def release(self, viewer: Viewer) -> None:
        """Close `viewer` and forget it."""
        viewer.close()
        self._viewers.discard(viewer)
        if viewer.dropped:
            logger.warning(
                "viewer of %s fell behind: %d events dropped", viewer.channel_arn, viewer.dropped
            )

    def close_all(self) -> None:
        """Close every viewer (their handlers then finish their responses)."""
        for viewer in list(self._viewers):
            viewer.close()
