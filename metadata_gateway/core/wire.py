"""The compressed and part payloads (docs/wire-format.md): framing, encoding and packing.

A `deflate` channel's payload is `~z` and base85 (RFC 1924) of one byte of version and
dictionary, the CRC-32 of the envelope, and the envelope raw-deflated with a preset dictionary.
A cue too big for one payload travels as `~p` parts: the same header byte and CRC, the part's
index and count, and a slice of the deflated envelope, one part per call. Pure and stdlib-only.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Sequence

from metadata_gateway.core.envelope import ENVELOPE_OVERHEAD as ENVELOPE_HEAD_TAIL
from metadata_gateway.core.envelope import MAX_METADATA_BYTES, encode_payload

COMPRESSED_MARKER = b"~z"
PART_MARKER = b"~p"
RESERVED_PREFIXES = ("~z", "~p")  # raw cues may not start with these: decoders would misread them
FORMAT_VERSION = 1
DICTIONARY_ID = 1
HEADER_BYTE = FORMAT_VERSION << 4 | DICTIONARY_ID
# The envelope's own keys and the usual cue shapes: deflate can copy from it at the first cue.
DICTIONARY = (
    b'{"i":"","t":"custom","d":{}},{"i":"","t":"state","d":{}},'
    b'{"i":"","t":"poll","d":{"poll_id":""}},{"i":"","t":"quiz","d":{"question_id":""}},'
    b'{"i":"","t":"caption","d":{"text":"","lang":"","final":false}}]}{"v":1,"c":[{"i":"'
)
_COMPRESSED_HEAD = struct.Struct(">BI")  # header byte, CRC-32 of the envelope
_PART_HEAD = struct.Struct(">BIBB")  # header byte, CRC-32 of the whole envelope, index, count
MAX_PARTS = 255  # one byte of index
MAX_ENVELOPE_BYTES = 65_536  # the most any decoded envelope may inflate to (max_cue_bytes' cap)
LEVEL = 9
MEM_LEVEL = 8  # 9 makes each trial's copy of the compressor 15x slower, for nothing


def b85_length(size: int) -> int:
    """Characters of base85 for `size` bytes (a last group of n bytes takes n + 1)."""
    whole, rest = divmod(size, 4)
    return whole * 5 + (rest + 1 if rest else 0)


def _b85_capacity(chars: int) -> int:
    """The most bytes whose base85 fits in `chars` characters."""
    whole, rest = divmod(chars, 5)
    return whole * 4 + max(0, rest - 1)


# Bytes of deflated envelope one part can carry.
PART_DATA_BYTES = _b85_capacity(MAX_METADATA_BYTES - len(PART_MARKER)) - _PART_HEAD.size


def _compressor() -> zlib._Compress:
    return zlib.compressobj(LEVEL, zlib.DEFLATED, -15, MEM_LEVEL, zdict=DICTIONARY)


def deflate(data: bytes) -> bytes:
    """Raw deflate with the preset dictionary, as the decoders inflate it."""
    compressor = _compressor()
    return compressor.compress(data) + compressor.flush()


def compressed_payload(envelope: bytes, deflated: bytes) -> bytes:
    """The `~z` payload of `envelope`, given its deflated bytes."""
    frame = _COMPRESSED_HEAD.pack(HEADER_BYTE, zlib.crc32(envelope)) + deflated
    return COMPRESSED_MARKER + base64.b85encode(frame)


def compressed_size(deflated_size: int) -> int:
    """Bytes of the `~z` payload whose deflated envelope takes `deflated_size`."""
    return len(COMPRESSED_MARKER) + b85_length(_COMPRESSED_HEAD.size + deflated_size)


def split_parts(envelope: bytes) -> list[bytes]:
    """The `~p` payloads that carry `envelope` in order (at least two)."""
    stream = deflate(envelope)
    count = max(2, math.ceil(len(stream) / PART_DATA_BYTES))
    if count > MAX_PARTS:
        raise ValueError(f"an envelope of {len(envelope)} bytes needs {count} parts")
    step = math.ceil(len(stream) / count)  # even slices: no tiny last part
    crc = zlib.crc32(envelope)
    return [
        PART_MARKER
        + base64.b85encode(
            _PART_HEAD.pack(HEADER_BYTE, crc, index, count)
            + stream[index * step : (index + 1) * step]
        )
        for index in range(count)
    ]


def calls_for(envelope_size: int) -> int:
    """The most calls an envelope of this size takes (deflate only ever shrinks cue text a
    little at worst, so its plain size bounds its parts)."""
    if envelope_size <= MAX_METADATA_BYTES:
        return 1
    return max(2, math.ceil((envelope_size + 16) / PART_DATA_BYTES))


def pack_compressed(items: Sequence[bytes], limit: int = MAX_METADATA_BYTES) -> tuple[int, bytes]:
    """How many of `items`, from the first, fit in one `~z` payload, and that payload (0 and
    b"" when not even the first fits).

    A binary search over how many: compressed size grows with each item added, so the largest
    count that fits is found in log2(len(items)) compressions rather than one per item.
    """
    low, best = 0, b""
    plain = ENVELOPE_HEAD_TAIL - 1
    high = 0
    for item in items:  # the envelope may not outgrow what decoders inflate
        plain += len(item) + 1
        if plain > MAX_ENVELOPE_BYTES:
            break
        high += 1
    while low < high:
        middle = (low + high + 1) // 2
        envelope = encode_payload(items[:middle])
        deflated = deflate(envelope)
        if compressed_size(len(deflated)) <= limit:
            low, best = middle, compressed_payload(envelope, deflated)
        else:
            high = middle - 1
    return low, best
