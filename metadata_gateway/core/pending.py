"""What a queue holds and hands out: a cue with its times and state (`Pending`), one call's
worth of cues (`Batch`), and the encodings a channel's payloads use."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum

from metadata_gateway.core.cues import Cue

_sequence = itertools.count()


class Encoding(Enum):
    """How a channel's payloads carry the envelope (the `payload_encoding` setting)."""

    JSON = "json"  # the envelope as it is, readable by anything
    DEFLATE = "deflate"  # `~z` payloads: the envelope deflated, for the gateway's decoders


class CueState(Enum):
    """Where a cue stands in its channel; the `state` a cancel answers with."""

    SCHEDULED = "scheduled"  # held until its not_before
    QUEUED = "queued"  # waiting for a call
    IN_FLIGHT = "in_flight"  # in a call not yet answered
    REPEATING = "repeating"  # a sent state cue, re-sent while the channel is live


@dataclass(slots=True)
class Pending:
    """A cue in a queue, with the times that decide its fate (all on the scheduler's clock)."""

    cue: Cue
    accepted_at: float
    expires_at: float
    release_at: float  # not_before on this clock; accepted_at for a cue due at once
    seq: int = field(default_factory=lambda: next(_sequence))
    state: CueState = CueState.QUEUED
    repeat_at: float = 0.0  # when a repeating state cue is next due

    @property
    def size(self) -> int:
        """Bytes the cue adds to the queue's byte count."""
        return len(self.cue.item)


@dataclass(frozen=True, slots=True)
class Batch:
    """One PutMetadata call: fresh cues, state repeats riding along, and the payload."""

    cues: tuple[Pending, ...]
    payload: bytes
    repeats: tuple[Pending, ...] = ()
    part: tuple[int, int] | None = None  # (index, count) for a part of a cue in parts


@dataclass(frozen=True, slots=True)
class Taken:
    """What one call to `take_batch` removed: the batch to send and the cues found expired."""

    batch: Batch | None
    expired: tuple[Pending, ...]
