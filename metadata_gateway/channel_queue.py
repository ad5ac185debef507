"""One channel's waiting cues: ordered, collapsed by key, expired by TTL, taken in full payloads."""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from metadata_gateway.cues import Cue, Priority
from metadata_gateway.envelope import ENVELOPE_OVERHEAD, MAX_METADATA_BYTES, encode_payload

_sequence = itertools.count()


@dataclass(slots=True)
class Pending:
    """A cue waiting in a queue, with the times that decide its fate."""

    cue: Cue
    accepted_at: float
    expires_at: float
    seq: int = field(default_factory=lambda: next(_sequence))

    @property
    def size(self) -> int:
        """Bytes the cue adds to the queue's byte count."""
        return len(self.cue.item)


@dataclass(frozen=True, slots=True)
class Batch:
    """The cues of one PutMetadata call, and the payload that carries them."""

    cues: tuple[Pending, ...]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Taken:
    """What one call to `take_batch` removed: the batch to send and the cues found expired."""

    batch: Batch | None
    expired: tuple[Pending, ...]


class ChannelQueue:
    """The cues one channel has yet to send, in priority order and, within one, arrival order."""

    __slots__ = ("_by_id", "_by_key", "_deadlines", "_lanes", "pending_bytes")

    def __init__(self) -> None:
        self._lanes: tuple[OrderedDict[int, Pending], ...] = tuple(OrderedDict() for _ in Priority)
        self._by_key: dict[str, Pending] = {}
        self._by_id: dict[str, Pending] = {}
        # A min-heap of (expires_at, seq); entries of cues that left the queue are skipped lazily.
        self._deadlines: list[tuple[float, int]] = []
        self.pending_bytes = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Pending]:
        for lane in self._lanes:
            yield from lane.values()

    def __repr__(self) -> str:
        return f"<ChannelQueue pending={len(self)} bytes={self.pending_bytes}>"

    def get(self, cue_id: str) -> Pending | None:
        """The waiting cue with this id, if any."""
        return self._by_id.get(cue_id)

    def add(self, cue: Cue, now: float) -> Pending | None:
        """Queue `cue`; return the cue it superseded (same collapse key), which leaves the queue."""
        pending = Pending(cue, accepted_at=now, expires_at=now + cue.ttl)
        old = self._by_key.get(cue.key) if cue.key is not None else None
        lane = self._lanes[cue.priority]
        if old is not None and old.cue.priority == cue.priority:
            # Latest wins, in the place of the cue it replaces.
            lane[old.seq] = pending
            self._forget(old)
            pending.seq, old.seq = old.seq, -1
        else:
            if old is not None:
                self.remove(old)
            lane[pending.seq] = pending
        self._remember(pending)
        return old

    def remove(self, pending: Pending) -> None:
        """Take one cue out of the queue (cancelled, or superseded across priorities)."""
        del self._lanes[pending.cue.priority][pending.seq]
        self._forget(pending)

    def next_expiry(self) -> float | None:
        """When the earliest waiting cue expires, or None with nothing waiting."""
        deadlines = self._deadlines
        while deadlines and not self._is_waiting(deadlines[0][1]):
            heapq.heappop(deadlines)
        return deadlines[0][0] if deadlines else None

    def expire(self, now: float) -> list[Pending]:
        """Remove and return every cue whose TTL has passed at `now`."""
        expired: list[Pending] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, seq = heapq.heappop(deadlines)
            pending = self._find(seq)
            if pending is not None and pending.expires_at <= now:
                self.remove(pending)
                expired.append(pending)
        return expired

    def take_batch(self, now: float, limit: int = MAX_METADATA_BYTES) -> Taken:
        """Remove the oldest cues that fit in one payload, dropping expired ones on the way."""
        expired = self.expire(now)
        chosen: list[Pending] = []
        size = ENVELOPE_OVERHEAD - 1  # each item adds itself and a comma, except the first
        for pending in self:
            if pending.cue.raw:
                if not chosen:
                    chosen.append(pending)
                break
            if size + pending.size + 1 > limit:
                break
            size += pending.size + 1
            chosen.append(pending)
        if not chosen:
            return Taken(None, tuple(expired))
        for pending in chosen:
            self.remove(pending)
        if chosen[0].cue.raw:
            payload = chosen[0].cue.item
        else:
            payload = encode_payload(p.cue.item for p in chosen)
        return Taken(Batch(tuple(chosen), payload), tuple(expired))

    def requeue(self, batch: Batch) -> list[Pending]:
        """Put an unsent batch back at the front; return cues superseded while it was in flight."""
        superseded: list[Pending] = []
        for pending in reversed(batch.cues):
            key = pending.cue.key
            if key is not None and key in self._by_key:
                superseded.append(pending)
                continue
            lane = self._lanes[pending.cue.priority]
            lane[pending.seq] = pending
            lane.move_to_end(pending.seq, last=False)
            self._remember(pending)
        superseded.reverse()
        return superseded

    def _remember(self, pending: Pending) -> None:
        cue = pending.cue
        self._by_id[cue.id] = pending
        if cue.key is not None:
            self._by_key[cue.key] = pending
        self.pending_bytes += pending.size
        heapq.heappush(self._deadlines, (pending.expires_at, pending.seq))
        if len(self._deadlines) > 2 * len(self._by_id) + 16:
            self._deadlines = [(p.expires_at, p.seq) for p in self]
            heapq.heapify(self._deadlines)

    def _forget(self, pending: Pending) -> None:
        cue = pending.cue
        del self._by_id[cue.id]
        if cue.key is not None and self._by_key.get(cue.key) is pending:
            del self._by_key[cue.key]
        self.pending_bytes -= pending.size

    def _find(self, seq: int) -> Pending | None:
        for lane in self._lanes:
            pending = lane.get(seq)
            if pending is not None:
                return pending
        return None

    def _is_waiting(self, seq: int) -> bool:
        return any(seq in lane for lane in self._lanes)
