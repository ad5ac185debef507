"""What the gateway answers about cues: one result per cue sent, and delivery receipts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CueJson = Mapping[str, Any]  # a cue as the API takes it: channel, type, data, id, key, ...
MAX_CUES_PER_REQUEST = 100  # the gateway's bound on the cues of one request or frame
ID_LENGTH = 20  # 80 random bits: no collision in the gateway's 10-minute idempotency window


def new_cue_id() -> str:
    """A fresh random cue id, short enough for the gateway's 64-character limit."""
    return uuid.uuid4().hex[:ID_LENGTH]


def with_id(cue: CueJson) -> dict[str, Any]:
    """A copy of `cue` that has an `id`, so that sending it again is idempotent."""
    if not isinstance(cue, Mapping):
        raise TypeError(f"a cue must be a mapping, not {type(cue).__name__}")
    copy = dict(cue)
    if copy.get("id") is None:
        copy["id"] = new_cue_id()
    return copy


def check_batch(cues: Sequence[CueJson]) -> None:
    """Refuse, before sending, a batch the gateway would refuse for its size."""
    if isinstance(cues, str | bytes | Mapping) or not 1 <= len(cues) <= MAX_CUES_PER_REQUEST:
        raise ValueError(f"send_many takes a sequence of 1 to {MAX_CUES_PER_REQUEST} cues")


@dataclass(frozen=True, slots=True)
class CueResult:
    """The gateway's answer for one cue: `queued`, or `duplicate` of one it already had."""

    id: str
    channel: str  # the channel ARN, even when the cue named an alias
    status: str  # "queued" or "duplicate"
    delivered: bool | None = None  # for a duplicate: had the original reached IVS already?

    @classmethod
    def from_json(cls, entry: Any) -> CueResult:
        """One entry of a 202 body's or an ack's `cues` list."""
        delivered = entry.get("delivered")
        return cls(
            id=str(entry["id"]),
            channel=str(entry["channel"]),
            status=str(entry["status"]),
            delivered=delivered if isinstance(delivered, bool) else None,
        )


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A cancelled cue: its id, its channel's ARN, and where it stood (`queued`, ...)."""

    id: str
    channel: str
    state: str

    @classmethod
    def from_json(cls, entry: Any) -> Cancelled:
        """A cancel's answer: the body of `DELETE /v1/cues/{id}` or the entry of its ack."""
        return cls(id=str(entry["id"]), channel=str(entry["channel"]), state=str(entry["state"]))


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of cues sent over a stream: `sent` to IVS at `at`, or `dropped` for `reason`.

    A `sent` receipt whose `at` is None was made by the client: a re-sent cue was answered
    `duplicate` with `delivered: true`, so it reached IVS but the time is not known.
    """

    op: Literal["sent", "dropped"]
    channel: str
    ids: tuple[str, ...]
    at: float | None = None  # unix seconds when IVS accepted the PutMetadata call
    reason: str | None = None  # for `dropped`: expired, superseded, ivs_error, shutdown, cancelled

    @classmethod
    def from_json(cls, message: Mapping[str, Any]) -> Receipt:
        """A `sent` or `dropped` message of the stream."""
        op = message["op"]
        at, reason = message.get("at"), message.get("reason")
        return cls(
            op="sent" if op == "sent" else "dropped",
            channel=str(message["channel"]),
            ids=tuple(str(i) for i in message["ids"]),
            at=float(at) if isinstance(at, int | float) and op == "sent" else None,
            reason=str(reason) if reason is not None else None,
        )
