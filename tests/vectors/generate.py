"""Writes tests/vectors/payloads.json: payload sequences and what a decoder must make of them.

Both decoders (metadata_gateway.client.CueDecoder and clients/js/cue_decoder.js) are tested
on the file; after a change to the wire format run `PYTHONPATH=. python tests/vectors/generate.py`
and commit it.
"""

from __future__ import annotations

import base64
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import large_text
from metadata_gateway.core.envelope import encode_item, encode_payload
from metadata_gateway.core.wire import (
    DICTIONARY,
    HEADER_BYTE,
    PART_MARKER,
    pack_compressed,
    split_parts,
)

OUT = Path(__file__).with_name("payloads.json")
MULTI = "¿Qué? — 東京の夜景 🎉 Ñandú, München. "


def item(cue_id: str, cue_type: str, data: Any) -> bytes:
    return encode_item(cue_id, cue_type, data)


def cue(cue_id: str, cue_type: str, data: Any) -> dict[str, Any]:
    return {"kind": "cue", "id": cue_id, "type": cue_type, "data": data}


def compressed(*cues: tuple[str, str, Any]) -> str:
    items = [item(*c) for c in cues]
    count, payload = pack_compressed(items)
    assert count == len(items)
    return payload.decode()


def stored_parts(envelope: bytes, cut: int) -> list[str]:
    """Two parts of an envelope deflated without compression (stored blocks), split at `cut`
    bytes of the stream: a cut that falls inside a multi-byte character of the text."""
    compressor = zlib.compressobj(0, zlib.DEFLATED, -15, 8, zdict=DICTIONARY)
    stream = compressor.compress(envelope) + compressor.flush()
    crc = zlib.crc32(envelope)
    head = struct.Struct(">BIBB")
    return [
        (PART_MARKER + base64.b85encode(head.pack(HEADER_BYTE, crc, i, 2) + piece)).decode()
        for i, piece in enumerate((stream[:cut], stream[cut:]))
    ]


def flip(text: str, at: int) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    replacement = alphabet[(alphabet.find(text[at]) + 1) % len(alphabet)]
    return text[:at] + replacement + text[at + 1 :]


def case(name: str, payloads: list[str], expect: list[list[Any]], damage: list[list[str]]) -> Any:
    assert len(payloads) == len(expect) == len(damage), name
    return {"name": name, "payloads": payloads, "expect": expect, "damage": damage}


def build() -> list[dict[str, Any]]:
    small = [
        ("q1", "quiz", {"question_id": "q1", "text": "2+2?", "options": ["3", "4"]}),
        ("p1", "poll", {"poll_id": "p1", "tally": {"yes": 12, "no": 3}}),
        ("c1", "caption", {"text": MULTI, "lang": "es", "final": True}),
    ]
    plain = encode_payload(item(*c) for c in small).decode()
    z = compressed(*small)
    big_data = {"text": large_text(16_000)}  # ~16 KB of multi-byte text
    big_envelope = encode_payload([item("big", "custom", big_data)])
    parts = [p.decode() for p in split_parts(big_envelope)]
    after = compressed(("s1", "custom", {"n": 1}))
    # Stored blocks: the text's bytes appear as they are in the stream, so a cut at a byte
    # inside "東" (3 bytes of UTF-8) splits that character between the two parts.
    split_data = {"text": "ab東京cd" * 40}
    split_envelope = encode_payload([item("split", "custom", split_data)])
    inside = split_envelope.index("東".encode()) + 1 + 5  # +5: the stored block's header
    big = [cue("big", "custom", big_data)]
    none: list[Any] = []
    n = len(parts)
    assert n >= 4, n
    return [
        case("plain envelope", [plain], [[cue(*c) for c in small]], [[]]),
        case("compressed envelope", [z], [[cue(*c) for c in small]], [[]]),
        case("repeat dropped by id", [z, plain], [[cue(*c) for c in small], none], [[], []]),
        case(
            "raw text passes through",
            ["GOAL 1-0", '{"v":2,"c":[]}', "~x"],
            [
                [{"kind": "raw", "text": "GOAL 1-0"}],
                [{"kind": "raw", "text": '{"v":2,"c":[]}'}],
                [{"kind": "raw", "text": "~x"}],
            ],
            [[], [], []],
        ),
        case(
            "16 KB multi-byte cue in parts, then a small cue",
            [*parts, after],
            [*([none] * (n - 1)), big, [cue("s1", "custom", {"n": 1})]],
            [[]] * (n + 1),
        ),
        case(
            "split inside a multi-byte character",
            stored_parts(split_envelope, inside),
            [none, [cue("split", "custom", split_data)]],
            [[], []],
        ),
        case(
            "a part sent twice is taken once",
            [parts[0], parts[0], *parts[1:], parts[-1]],
            [none, none, *([none] * (n - 2)), big, none],
            [[]] * (n + 2),
        ),
        case(
            "joined after the first part: nothing partial",
            [*parts[1:], after],
            [*([none] * (n - 1)), [cue("s1", "custom", {"n": 1})]],
            [[]] * n,
        ),
        case(
            "cut off by another payload: incomplete",
            [parts[0], parts[1], after],
            [none, none, [cue("s1", "custom", {"n": 1})]],
            [[], [], ["incomplete"]],
        ),
        case(
            "corrupt part: the whole cue is refused",
            [parts[0], flip(parts[1], 40), *parts[2:]],
            [none] * n,
            [*([[]] * (n - 1)), ["corrupt"]],
        ),
        case(
            "truncated last part",
            [*parts[:-1], parts[-1][: len(parts[-1]) // 2 * 5 // 5]],
            [none] * n,
            [*([[]] * (n - 1)), ["corrupt"]],
        ),
        case("flipped character in a compressed payload", [flip(z, 30)], [none], [["corrupt"]]),
        case("truncated compressed payload", [z[:-10]], [none], [["corrupt"]]),
        case("character outside base85", [z[:20] + '"' + z[21:]], [none], [["corrupt"]]),
        case("impossible base85 length", [z + "0"], [none], [["corrupt"]]),
        case("header too short", ["~z0"], [none], [["corrupt"]]),
        case(
            "unknown format version",
            ["~z" + base64.b85encode(bytes([0x21]) + base64.b85decode(z[2:])[1:]).decode()],
            [none],
            [["unsupported"]],
        ),
    ]


def main() -> int:
    """Write the vectors file."""
    OUT.write_bytes(orjson.dumps({"cases": build()}, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
