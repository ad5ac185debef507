"""Client ids seen recently, so that a retried cue is not queued or delivered twice."""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum

IDEMPOTENCY_WINDOW_S = 600.0  # a cue id is remembered for 10 minutes after it was queued or sent
MAX_REMEMBERED_IDS = 1_000_000  # ~150 MB at most; the oldest are forgotten first beyond it


class IdState(Enum):
    """What became of the cue that last used an id."""

    QUEUED = "queued"  # waiting or in flight
    DELIVERED = "delivered"


class RecentIds:
    """Maps (channel, client id) to the state of its cue, for `IDEMPOTENCY_WINDOW_S`."""

    __slots__ = ("_entries", "max_entries", "window")

    def __init__(
        self, *, window: float = IDEMPOTENCY_WINDOW_S, max_entries: int = MAX_REMEMBERED_IDS
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        # Ordered by last change, so the stale ones are always at the front.
        self._entries: OrderedDict[tuple[str, str], tuple[IdState, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<RecentIds remembered={len(self._entries)}>"

    def lookup(self, channel: str, cue_id: str, now: float) -> IdState | None:
        """The state of the cue that used this id in the window, if any."""
        self._prune(now)
        entry = self._entries.get((channel, cue_id))
        return entry[0] if entry is not None else None

    def set(self, channel: str, cue_id: str, state: IdState, now: float) -> None:
        """Record that the cue with this id is now in `state`."""
        key = (channel, cue_id)
        self._entries[key] = (state, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, channel: str, cue_id: str) -> None:
        """A dropped cue's id may be used again."""
        self._entries.pop((channel, cue_id), None)

    def _prune(self, now: float) -> None:
        entries = self._entries
        cutoff = now - self.window
        while entries:
            _, (_, changed) = next(iter(entries.items()))
            if changed > cutoff:
                return
            entries.popitem(last=False)
