"""The frames a stream keeps until the gateway answers them, and how re-sent cues are framed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

from metadata_gateway.client.results import MAX_CUES_PER_REQUEST

CueKey = tuple[str, str]  # (channel ARN, cue id), as acks and receipts name a cue


@dataclass(slots=True, eq=False)
class Frame:
    """A `cue`, `cues` or `cancel` frame until its ack, and when and where it was written."""

    ref: int
    cues: list[dict[str, Any]] = field(repr=False)
    data: str = field(repr=False)
    started: float
    # What the ack resolves: list[CueResult], or Cancelled for a cancel. None: nobody waits
    # (the stream's re-sends).
    future: asyncio.Future[Any] | None
    keys: list[CueKey] | None = None  # known for re-sends of acknowledged cues
    cancels: bool = False  # a `cancel` frame (its `cues` is empty)
    written: int = 0  # the connection (generation) it was last written on; 0: none
    retries: int = 0
    not_before: float = 0.0

    @classmethod
    def build(
        cls,
        ref: int,
        cues: list[dict[str, Any]],
        *,
        single: bool,
        started: float,
        future: asyncio.Future[Any] | None,
        keys: list[CueKey] | None = None,
    ) -> Frame:
        """A frame carrying `cues`, encoded once."""
        if single:
            message = {**cues[0], "op": "cue", "ref": ref}
        else:
            message = {"op": "cues", "ref": ref, "cues": cues}
        return cls(ref, cues, orjson.dumps(message).decode(), started, future, keys)

    @classmethod
    def cancel(
        cls, ref: int, cue_id: str, channel: str, *, started: float, future: asyncio.Future[Any]
    ) -> Frame:
        """A frame cancelling the cue `cue_id` of `channel` (an alias or ARN)."""
        message = {"op": "cancel", "ref": ref, "channel": channel, "id": cue_id}
        return cls(ref, [], orjson.dumps(message).decode(), started, future, cancels=True)


def chunks(
    items: list[tuple[CueKey, dict[str, Any]]], max_bytes: int
) -> list[list[tuple[CueKey, dict[str, Any]]]]:
    """Items in order, grouped at most 100 and about `max_bytes` of JSON to a frame."""
    groups: list[list[tuple[CueKey, dict[str, Any]]]] = []
    size = 0
    for item in items:
        item_size = len(orjson.dumps(item[1]))
        if not groups or len(groups[-1]) >= MAX_CUES_PER_REQUEST or size + item_size > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item_size
    return groups
