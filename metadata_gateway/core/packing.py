"""Coalescing: the fullest payload of the oldest waiting cues, measured as the channel's
encoding sends it, with due state repeats riding along where there is room."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from metadata_gateway.core.envelope import ENVELOPE_OVERHEAD
from metadata_gateway.core.wire import pack_compressed

if TYPE_CHECKING:  # packing only reads cues and sizes; it makes no Pending
    from metadata_gateway.core.pending import Pending

MAX_PACK_CANDIDATES = 64  # cues tried for one compressed payload: ~8x what usually fits


def pack_json(
    waiting: Iterable[Pending], due: list[Pending], limit: int
) -> tuple[list[Pending], list[Pending]]:
    """The waiting cues (in order, up to the first raw one) and the due repeats that fit in one
    plain JSON envelope of `limit` bytes."""
    chosen: list[Pending] = []
    size = ENVELOPE_OVERHEAD - 1  # each item adds itself and a comma, except the first
    for pending in waiting:
        if pending.cue.raw or size + pending.size + 1 > limit:
            break
        size += pending.size + 1
        chosen.append(pending)
    riders: list[Pending] = []
    for state in due:
        if size + state.size + 1 <= limit:
            size += state.size + 1
            riders.append(state)
    return chosen, riders


def pack_deflated(
    waiting: Iterable[Pending], due: list[Pending], limit: int
) -> tuple[list[Pending], list[Pending], bytes]:
    """The waiting cues and due repeats that fit in one deflated payload, and that payload."""
    candidates: list[Pending] = []
    for pending in waiting:
        if pending.cue.raw or len(candidates) == MAX_PACK_CANDIDATES:
            break
        candidates.append(pending)
    count, payload = pack_compressed([p.cue.item for p in candidates], limit)
    chosen = candidates[:count]
    riders: list[Pending] = []
    if due and (count == len(candidates)):
        # Repeats ride along only where fresh cues left room, one more compression each.
        items = [p.cue.item for p in chosen]
        for state in due:
            fits, with_state = pack_compressed([*items, state.cue.item], limit)
            if fits == len(items) + 1:
                items.append(state.cue.item)
                riders.append(state)
                payload = with_state
    return chosen, riders, payload
