"""One channel's cues: waiting in order, scheduled for later, or repeating as the channel's state.

Waiting cues are ordered by priority, then arrival; collapse keys replace in place; TTLs drop
stale cues. `take_batch` takes the fullest payload of the oldest waiting cues (`packing.py`) and
lets due state repeats ride along where there is room. A cue too big for one payload is sent in
parts, one per call, nothing between them: the channel's next calls carry the rest.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from metadata_gateway.core.cues import Cue, Priority
from metadata_gateway.core.envelope import (
    ENVELOPE_OVERHEAD,
    MAX_ITEM_BYTES,
    MAX_METADATA_BYTES,
    encode_payload,
)
from metadata_gateway.core.packing import pack_deflated, pack_json
from metadata_gateway.core.pending import Batch, CueState, Encoding, Pending, Taken
from metadata_gateway.core.wire import calls_for, split_parts


@dataclass(slots=True)
class _InParts:
    """A cue being sent in parts: what is left of it, and whether it is a state's repeat."""

    pending: Pending
    parts: list[bytes]
    next: int
    repeat: bool


class ChannelQueue:
    """The cues one channel has yet to send, in priority order and, within one, arrival order."""

    __slots__ = (
        "_by_id",
        "_by_key",
        "_deadlines",
        "_in_parts",
        "_lanes",
        "_releases",
        "_scheduled",
        "_states",
        "pending_bytes",
        "pending_calls",
    )

    def __init__(self) -> None:
        # One line per priority, made on first use: an empty OrderedDict costs 128 bytes.
        self._lanes: list[OrderedDict[int, Pending] | None] = [None] * len(Priority)
        self._scheduled: dict[int, Pending] = {}
        self._releases: list[tuple[float, int]] = []  # heap of (release_at, seq) of scheduled
        self._by_key: dict[str, Pending] = {}
        self._by_id: dict[str, Pending] = {}
        # A min-heap of (expires_at, seq); entries of cues that left the queue are skipped lazily.
        self._deadlines: list[tuple[float, int]] = []
        self._states: dict[str, Pending] = {}  # state key -> the sent state cue that repeats
        self._in_parts: _InParts | None = None
        self.pending_bytes = 0
        self.pending_calls = 0  # the calls waiting and scheduled cues take, at most

    def __len__(self) -> int:
        """Cues waiting or scheduled (not repeating states)."""
        return len(self._by_id)

    def __iter__(self) -> Iterator[Pending]:
        """Waiting cues, in the order they would be sent."""
        for lane in self._lanes:
            if lane:
                yield from lane.values()

    def __repr__(self) -> str:
        return (
            f"<ChannelQueue waiting={self.waiting} scheduled={len(self._scheduled)} "
            f"repeating={len(self._states)} bytes={self.pending_bytes}"
            f"{' in_parts' if self._in_parts else ''}>"
        )

    @property
    def waiting(self) -> int:
        """Cues due now and waiting for a call (a cue part way through its parts included)."""
        return len(self._by_id) - len(self._scheduled) + (self._in_parts is not None)

    @property
    def in_parts(self) -> Pending | None:
        """The cue whose parts are under way, if any: nothing else goes until it is sent."""
        return self._in_parts.pending if self._in_parts else None

    @property
    def scheduled(self) -> list[Pending]:
        """Cues held until their not_before, soonest first."""
        return sorted(self._scheduled.values(), key=lambda p: (p.release_at, p.seq))

    @property
    def repeating(self) -> list[Pending]:
        """Sent state cues that are re-sent while the channel is live."""
        return list(self._states.values())

    def head_priority(self) -> Priority | None:
        """The priority of the cue the next payload starts with, or None with nothing waiting."""
        if self._in_parts is not None:
            return self._in_parts.pending.cue.priority
        for priority, lane in zip(Priority, self._lanes, strict=True):
            if lane:
                return priority
        return None

    def get(self, cue_id: str) -> Pending | None:
        """The waiting, scheduled or repeating cue with this id, if any."""
        found = self._by_id.get(cue_id)
        if found is not None:
            return found
        return next((p for p in self._states.values() if p.cue.id == cue_id), None)

    # ---- in -----------------------------------------------------------------------------

    def add(self, cue: Cue, now: float, *, release_at: float | None = None) -> Pending | None:
        """Queue `cue` (held until `release_at` if later than `now`); return what it superseded."""
        release = now if release_at is None or release_at <= now else release_at
        pending = Pending(cue, accepted_at=now, expires_at=release + cue.ttl, release_at=release)
        if cue.key is not None and cue.type == "state":
            self._states.pop(cue.key, None)  # a newer state replaces the repeating one
        old = self._by_key.get(cue.key) if cue.key is not None else None
        if release > now:
            pending.state = CueState.SCHEDULED
            if old is not None:
                self.remove(old)
            self._scheduled[pending.seq] = pending
            heapq.heappush(self._releases, (release, pending.seq))
        elif old is not None and old.state is CueState.QUEUED and old.cue.priority == cue.priority:
            # Latest wins, in the place of the cue it replaces.
            self._lane(cue.priority)[old.seq] = pending
            self._forget(old)
            pending.seq, old.seq = old.seq, -1
        else:
            if old is not None:
                self.remove(old)
            self._lane(cue.priority)[pending.seq] = pending
        self._remember(pending)
        return old

    def restore_state(self, pending: Pending) -> bool:
        """Repeat a state another process sent; False if a newer state of its key waits here."""
        key = pending.cue.key or ""  # a state that repeats always has one
        current = self._by_key.get(key)
        if current is not None and current.cue.type == "state":
            return False
        pending.state = CueState.REPEATING
        self._states[key] = pending
        return True

    def remove(self, pending: Pending) -> None:
        """Take one waiting or scheduled cue out of the queue."""
        if pending.state is CueState.SCHEDULED:
            del self._scheduled[pending.seq]
        else:
            del self._lane(pending.cue.priority)[pending.seq]
        self._forget(pending)

    def cancel(self, cue_id: str) -> tuple[Pending, CueState] | None:
        """Remove the waiting, scheduled or repeating cue with this id; return it and its state."""
        pending = self._by_id.get(cue_id)
        if pending is not None:
            state = pending.state
            self.remove(pending)
            return pending, state
        for key, repeating in self._states.items():
            if repeating.cue.id == cue_id:
                del self._states[key]
                return repeating, CueState.REPEATING
        return None

    # ---- time ---------------------------------------------------------------------------

    def release(self, now: float) -> int:
        """Move scheduled cues whose time has come into line; return how many."""
        released = 0
        releases = self._releases
        while releases and releases[0][0] <= now:
            _, seq = heapq.heappop(releases)
            pending = self._scheduled.pop(seq, None)
            if pending is None:
                continue
            pending.state = CueState.QUEUED
            self._lane(pending.cue.priority)[pending.seq] = pending
            released += 1
        return released

    def next_event(self, now: float, *, live: bool) -> float | None:
        """When something next happens by itself: a release, an expiry or (if live) a repeat
        falling due after `now` (one due already is the scheduler's to send, not a timer's)."""
        times = []
        while self._releases and self._releases[0][1] not in self._scheduled:
            heapq.heappop(self._releases)
        if self._releases:
            times.append(self._releases[0][0])
        deadlines = self._deadlines
        while deadlines and self._find(deadlines[0][1]) is None:
            heapq.heappop(deadlines)
        if deadlines:
            times.append(deadlines[0][0])
        for state in self._states.values():
            times.append(state.expires_at)
            if live and state.repeat_at > now:
                times.append(state.repeat_at)
        in_parts = self._in_parts
        if in_parts is not None and in_parts.next < len(in_parts.parts):
            times.append(in_parts.pending.expires_at)
        return min(times, default=None)

    def expire(self, now: float) -> list[Pending]:
        """Remove and return every waiting cue whose TTL has passed; retire expired states."""
        expired: list[Pending] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, seq = heapq.heappop(deadlines)
            pending = self._find(seq)
            if pending is not None and pending.expires_at <= now:
                self.remove(pending)
                expired.append(pending)
        for key in [k for k, p in self._states.items() if p.expires_at <= now]:
            del self._states[key]
        in_parts = self._in_parts
        # Parts not all taken by the end of the cue's time: the rest is abandoned (a part in a
        # call is never taken back, so the last one is always completed).
        if (
            in_parts is not None
            and in_parts.next < len(in_parts.parts)
            and in_parts.pending.expires_at <= now
        ):
            self._in_parts = None
            if not in_parts.repeat:
                expired.append(in_parts.pending)
        return expired

    def repeats_due(self, now: float) -> bool:
        """Whether a state cue is due to be re-sent."""
        return any(p.repeat_at <= now < p.expires_at for p in self._states.values())

    # ---- out ----------------------------------------------------------------------------

    def take_batch(
        self,
        now: float,
        *,
        repeats: bool = True,
        limit: int = MAX_METADATA_BYTES,
        encoding: Encoding = Encoding.JSON,
    ) -> Taken:
        """Remove the oldest due cues that fit in one payload, dropping expired ones on the way;
        due state repeats fill what room is left when `repeats` is true. A cue in parts under
        way sends its next part; a cue too big for a payload of its own starts its parts."""
        self.release(now)
        expired = self.expire(now)
        if self._in_parts is not None:
            return Taken(self._next_part(), tuple(expired))
        head = next(iter(self), None)
        if head is not None and head.cue.raw:
            self.remove(head)
            head.state = CueState.IN_FLIGHT
            return Taken(Batch((head,), head.cue.item), tuple(expired))
        due = (
            sorted(
                (p for p in self._states.values() if p.repeat_at <= now < p.expires_at),
                key=lambda p: p.repeat_at,
            )
            if repeats
            else []
        )
        if encoding is Encoding.DEFLATE:
            chosen, riders, payload = pack_deflated(self, due, limit)
        else:
            chosen, riders = pack_json(self, due, limit)
            payload = b""
        if head is not None and not chosen:  # too big for a payload of its own
            return Taken(self._start_parts(head, now, repeat=False), tuple(expired))
        if not chosen and not riders:
            big = next((p for p in due if len(p.cue.item) > MAX_ITEM_BYTES), None)
            if big is None:
                return Taken(None, tuple(expired))
            return Taken(self._start_parts(big, now, repeat=True), tuple(expired))
        for pending in chosen:
            self.remove(pending)
            pending.state = CueState.IN_FLIGHT
        if not payload:
            payload = encode_payload(p.cue.item for p in (*chosen, *riders))
        return Taken(Batch(tuple(chosen), payload, tuple(riders)), tuple(expired))

    def _start_parts(self, pending: Pending, now: float, *, repeat: bool) -> Batch:
        if not repeat:
            self.remove(pending)
            pending.state = CueState.IN_FLIGHT
            # The rest of its parts get a TTL of their own from the first: a cue is never
            # abandoned half sent merely because it waited in line before starting.
            pending.expires_at = max(pending.expires_at, now + pending.cue.ttl)
        parts = split_parts(encode_payload([pending.cue.item]))
        self._in_parts = _InParts(pending, parts, 0, repeat)
        return self._next_part()

    def _next_part(self) -> Batch:
        in_parts = self._in_parts
        assert in_parts is not None
        index, count = in_parts.next, len(in_parts.parts)
        in_parts.next += 1
        last = index == count - 1
        pending = in_parts.pending
        return Batch(
            cues=(pending,) if last and not in_parts.repeat else (),
            payload=in_parts.parts[index],
            repeats=(pending,) if last and in_parts.repeat else (),
            part=(index, count),
        )

    def abandon_parts(self) -> Pending | None:
        """Stop sending the cue in parts under way; return it unless it was a state's repeat
        (whose cue was delivered before and goes on repeating)."""
        in_parts, self._in_parts = self._in_parts, None
        if in_parts is None or in_parts.repeat:
            return None
        return in_parts.pending

    def delivered(self, batch: Batch, now: float) -> None:
        """After a successful call: sent state cues start repeating, repeats are due again later."""
        if batch.part is not None:
            index, count = batch.part
            if index < count - 1 or self._in_parts is None:
                return
            self._in_parts = None
        for pending in batch.cues:
            cue = pending.cue
            if cue.repeat is not None and cue.key is not None and pending.expires_at > now:
                current = self._by_key.get(cue.key)
                if current is None or current.cue.type != "state":
                    pending.state = CueState.REPEATING
                    pending.repeat_at = now + cue.repeat
                    self._states[cue.key] = pending
        for state in batch.repeats:
            if state.cue.repeat is not None:
                state.repeat_at = now + state.cue.repeat

    def requeue(self, batch: Batch) -> list[Pending]:
        """Put an unsent batch back at the front; return cues superseded while it was in flight."""
        if batch.part is not None:  # the same part goes again: parts never skip
            if self._in_parts is not None:
                self._in_parts.next = batch.part[0]
            return []
        superseded: list[Pending] = []
        for pending in reversed(batch.cues):
            key = pending.cue.key
            if key is not None and key in self._by_key:
                superseded.append(pending)
                continue
            pending.state = CueState.QUEUED
            lane = self._lane(pending.cue.priority)
            lane[pending.seq] = pending
            lane.move_to_end(pending.seq, last=False)
            self._remember(pending)
        superseded.reverse()
        return superseded

    # ---- books --------------------------------------------------------------------------

    def _remember(self, pending: Pending) -> None:
        cue = pending.cue
        self._by_id[cue.id] = pending
        if cue.key is not None:
            self._by_key[cue.key] = pending
        self.pending_bytes += pending.size
        self.pending_calls += calls_for(pending.size + ENVELOPE_OVERHEAD)
        heapq.heappush(self._deadlines, (pending.expires_at, pending.seq))
        if len(self._deadlines) > 2 * len(self._by_id) + 16:
            self._deadlines = [(p.expires_at, p.seq) for p in self._by_id.values()]
            heapq.heapify(self._deadlines)

    def _forget(self, pending: Pending) -> None:
        cue = pending.cue
        del self._by_id[cue.id]
        if cue.key is not None and self._by_key.get(cue.key) is pending:
            del self._by_key[cue.key]
        self.pending_bytes -= pending.size
        self.pending_calls -= calls_for(pending.size + ENVELOPE_OVERHEAD)

    def _find(self, seq: int) -> Pending | None:
        for lane in self._lanes:
            pending = lane.get(seq) if lane else None
            if pending is not None:
                return pending
        return self._scheduled.get(seq)

    def _lane(self, priority: Priority) -> OrderedDict[int, Pending]:
        lane = self._lanes[priority]
        if lane is None:
            lane = self._lanes[priority] = OrderedDict()
        return lane
