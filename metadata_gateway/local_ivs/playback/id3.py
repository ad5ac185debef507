"""ID3v2.4 tags as timed metadata: one TXXX frame holding a PutMetadata payload, or no frame."""

from __future__ import annotations

ID3_VERSION = b"\x04\x00"  # ID3v2.4.0
TEXT_ENCODING_UTF8 = 0x03  # ID3v2.4 text encoding byte for UTF-8
MAX_SYNCSAFE = (1 << 28) - 1  # four 7-bit bytes


def syncsafe(value: int) -> bytes:
    """`value` as a 4-byte ID3 syncsafe integer (7 bits per byte, high bit clear)."""
    if not 0 <= value <= MAX_SYNCSAFE:
        raise ValueError(f"{value} does not fit a syncsafe integer")
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _tag(frames: bytes) -> bytes:
    return b"ID3" + ID3_VERSION + b"\x00" + syncsafe(len(frames)) + frames


def txxx_tag(text: str, *, description: str = "") -> bytes:
    """A tag with one TXXX frame: UTF-8, the description, a NUL, then `text` unchanged."""
    body = bytes([TEXT_ENCODING_UTF8]) + description.encode() + b"\x00" + text.encode()
    frame = b"TXXX" + syncsafe(len(body)) + b"\x00\x00" + body
    return _tag(frame)


def empty_tag() -> bytes:
    """A tag with no frames: players parse it and show nothing (hls.js needs one per segment)."""
    return _tag(b"")
