"""The intake seam: everything a transport (HTTP or WebSocket) may ask of the queueing side.
Cues arrive here parsed and authorized; the local and the Redis intake sit behind it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from metadata_gateway.core.cues import Cue


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer for one submitted cue."""

    id: str
    channel: str
    status: str  # "queued" or "duplicate"
    type: str
    delivered: bool | None = None  # for duplicates: was the original already sent?

    def as_json(self) -> dict[str, object]:
        """The entry of the `cues` list in a 202 answer or a WebSocket ack."""
        body: dict[str, object] = {"id": self.id, "channel": self.channel, "status": self.status}
        if self.delivered is not None:
            body["delivered"] = self.delivered
        return body


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The answer for a cancelled cue: which channel it was on, and the state it was in."""

    id: str
    channel: str
    state: str  # "queued", "scheduled" or "repeating"

    def as_json(self) -> dict[str, object]:
        """The body of a 200 answer, or the entry of a WebSocket ack."""
        return {"id": self.id, "channel": self.channel, "status": "cancelled", "state": self.state}


@dataclass(frozen=True, slots=True)
class ChannelView:
    """One channel as the API shows it."""

    channel: str
    alias: str | None
    pending: int = 0
    pending_bytes: int = 0
    scheduled: int = 0
    repeating: int = 0
    live: bool | None = None
    sent_requests: int = 0
    delivered_cues: int = 0
    last_error: str | None = None
    scheduled_cues: tuple[dict[str, Any], ...] = field(default=())
    repeating_cues: tuple[dict[str, Any], ...] = field(default=())
    owner: str | None = None  # the replica sending the channel's cues (distributed mode)

    def as_json(self, *, detail: bool = False) -> dict[str, Any]:
        """The JSON body; `detail` lists the scheduled and repeating cues."""
        body: dict[str, Any] = {
            "channel": self.channel,
            "alias": self.alias,
            "pending": self.pending,
            "pending_bytes": self.pending_bytes,
            "scheduled": self.scheduled,
            "repeating": self.repeating,
            "live": self.live,
            "sent_requests": self.sent_requests,
            "delivered_cues": self.delivered_cues,
            "last_error": self.last_error,
            "owner": self.owner,
        }
        if detail:
            body["scheduled_cues"] = list(self.scheduled_cues)
            body["repeating_cues"] = list(self.repeating_cues)
        return body


class Intake(Protocol):
    """Keeps validated, authorized cues; answers only once they are kept."""

    def ensure_open(self) -> None:
        """Raise `shutting_down` (503) while the process drains: checked before parsing."""

    async def keep(self, cues: Sequence[Cue]) -> list[Accepted]:
        """Keep these cues, all or none; raise `CueError` (e.g. `queue_full`) for a refusal."""

    async def cancel(self, channel: str, cue_id: str) -> Cancelled:
        """Cancel a waiting, scheduled or repeating cue of this channel ARN."""

    def room_wait(self, keys: Iterable[tuple[str, str]], excess: int) -> float:
        """Seconds until `excess` of these (channel, id) cues have been sent or dropped."""

    async def channel(self, channel: str) -> ChannelView:
        """Describe one channel ARN (all zeros for one never met)."""

    async def channels(self, start: int, limit: int) -> tuple[list[ChannelView], int | None]:
        """A page of channels in the order they were met, and where the next page starts."""

    def health(self) -> dict[str, object]:
        """What /readyz reports: ready, degraded (IVS failing), draining or unavailable."""

    def unavailable(self) -> str | None:
        """Why no cue can be accepted now (readiness fails), or None."""
