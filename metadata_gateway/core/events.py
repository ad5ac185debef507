"""What happens to cues after they are accepted, for whoever needs to know (metrics, receipts)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, Pending


class DropReason(StrEnum):
    """Why an accepted cue was not delivered; the `reason` label of the dropped-cues metric."""

    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    IVS_ERROR = "ivs_error"
    SHUTDOWN = "shutdown"
    CANCELLED = "cancelled"
    SESSION_ENDED = "session_ended"  # a state cue whose stream session ended (not persist)


class DeliveryListener(Protocol):
    """Told, synchronously and in order, what became of each accepted cue and each call."""

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        """A PutMetadata carrying `cues` succeeded at `now` (loop time)."""

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """`cues` left the queue without being delivered."""

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        """One PutMetadata call ended, well or not."""
