"""The payload viewers receive: `{"v":1,"c":[{"i":ID,"t":TYPE,"d":DATA}, ...]}`, at most 1 KB."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

MAX_METADATA_BYTES = 1024  # IVS PutMetadata payload limit ("Maximum: 1 KB per request")
ENVELOPE_VERSION = 1

_HEAD = b'{"v":%d,"c":[' % ENVELOPE_VERSION
_TAIL = b"]}"
# A payload of n items costs the head, the tail, the items and n-1 commas.
ENVELOPE_OVERHEAD = len(_HEAD) + len(_TAIL)
MAX_ITEM_BYTES = MAX_METADATA_BYTES - ENVELOPE_OVERHEAD


def encode_item(cue_id: str, cue_type: str, data: Any) -> bytes:
    """One cue as it appears in the envelope's list, compact UTF-8 JSON (no \\u escapes)."""
    # orjson's result sits in a buffer of ~4 KB whatever its length; a copy is exactly sized,
    # which makes a queued cue cost ~100 bytes rather than 4 KB.
    return bytes(memoryview(orjson.dumps({"i": cue_id, "t": cue_type, "d": data})))


def payload_size(item_sizes: Iterable[int]) -> int:
    """Bytes of the envelope holding items of these sizes."""
    total, count = 0, 0
    for size in item_sizes:
        total += size
        count += 1
    return ENVELOPE_OVERHEAD + total + max(0, count - 1)


def encode_payload(items: Iterable[bytes]) -> bytes:
    """The envelope holding `items` in order."""
    return _HEAD + b",".join(items) + _TAIL
