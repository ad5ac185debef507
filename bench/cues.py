"""Cues of a chosen size, and what one 1024-byte PutMetadata payload can carry of them."""

from __future__ import annotations

from typing import Any

from metadata_gateway.core.envelope import ENVELOPE_OVERHEAD, MAX_METADATA_BYTES

# `{"i":"","t":"custom","d":{"n":}}`: an item's bytes besides its id and serial number.
_ITEM_FRAME = 32
_PAD_FRAME = len(',"p":""')
TYPICAL_ID_LENGTH = 6  # the gateway's ids: 3 characters of prefix, a base-36 counter past 1295


def cue(channel: str, size: int, *, serial: int = 0) -> dict[str, Any]:
    """A custom cue whose item in the payload envelope takes about `size` bytes."""
    serial %= 1000
    base = _ITEM_FRAME + TYPICAL_ID_LENGTH + len(str(serial))
    # `n` keeps each cue's data distinct, as real cues are; `p` brings it to size.
    data: dict[str, Any] = {"n": serial}
    if size - base > _PAD_FRAME:
        data["p"] = "x" * (size - base - _PAD_FRAME)
    return {"channel": channel, "type": "custom", "data": data}


def cues_per_call(size: float) -> int:
    """How many items of `size` bytes fit in one payload, commas and envelope included."""
    return max(1, int((MAX_METADATA_BYTES - ENVELOPE_OVERHEAD + 1) // (size + 1)))


def fill_at(size: float) -> float:
    """The payload fill a full batch of `size`-byte items reaches."""
    count = cues_per_call(size)
    return (ENVELOPE_OVERHEAD + count * size + count - 1) / MAX_METADATA_BYTES
