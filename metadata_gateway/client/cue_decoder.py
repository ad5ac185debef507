"""Decodes metadata_gateway's payloads as a player (or any consumer of the stream) receives them.

The same behaviour as clients/js/cue_decoder.js, on the same test vectors (tests/vectors):
plain JSON envelopes, `~z` compressed envelopes and `~p` parts of a large cue, reassembled and
handed over once, whole; any other text is passed through as raw. Damage (a payload that fails
its checks, parts cut off) is reported to `on_damage` and counted, never raised. The format is
in docs/wire-format.md. Standard library and orjson only.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

ENVELOPE_VERSION = 1
FORMAT_VERSION = 1
DEFAULT_REMEMBERED_IDS = 10_000
MAX_ENVELOPE_BYTES = 65_536  # the gateway never sends an envelope larger than this
# Dictionary 1 of docs/wire-format.md: the envelope's keys and the usual cue shapes.
DICTIONARIES = {
    1: (
        b'{"i":"","t":"custom","d":{}},{"i":"","t":"state","d":{}},'
        b'{"i":"","t":"poll","d":{"poll_id":""}},{"i":"","t":"quiz","d":{"question_id":""}},'
        b'{"i":"","t":"caption","d":{"text":"","lang":"","final":false}}]}{"v":1,"c":[{"i":"'
    )
}

DamageReason = Literal["corrupt", "unsupported", "incomplete"]


@dataclass(frozen=True, slots=True)
class DecodedCue:
    """One cue from the gateway's envelope, with its `data` as posted."""

    id: str
    type: str
    data: Any
    kind: Literal["cue"] = "cue"


@dataclass(frozen=True, slots=True)
class RawPayload:
    """A payload that is not the gateway's, passed through as it came."""

    text: str
    kind: Literal["raw"] = "raw"


@dataclass(frozen=True, slots=True)
class Damage:
    """A payload or a cue in parts that could not be decoded, and why."""

    reason: DamageReason
    detail: str


Decoded = DecodedCue | RawPayload


class _Damaged(Exception):
    def __init__(self, reason: DamageReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class _Assembly:
    crc: int
    count: int
    header: int
    segments: list[bytes]


class CueDecoder:
    """Turns payload texts into new cues, once each, and raw payloads; never raises."""

    __slots__ = ("_assembly", "_limit", "_on_damage", "_seen", "damaged")

    def __init__(
        self,
        *,
        remembered_ids: int = DEFAULT_REMEMBERED_IDS,
        on_damage: Callable[[Damage], None] | None = None,
    ) -> None:
        if remembered_ids < 1:
            raise ValueError(f"remembered_ids must be a positive integer, not {remembered_ids}")
        self._limit = remembered_ids
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._assembly: _Assembly | None = None
        self._on_damage = on_damage
        self.damaged = 0  # payloads or cues in parts reported as damaged

    def __repr__(self) -> str:
        parts = (
            f" parts={len(self._assembly.segments)}/{self._assembly.count}"
            if self._assembly
            else ""
        )
        return f"<CueDecoder remembered={len(self._seen)} damaged={self.damaged}{parts}>"

    def has(self, cue_id: str) -> bool:
        """Whether a cue id has already been passed on (and is still remembered)."""
        return cue_id in self._seen

    def decode(self, text: str) -> list[Decoded]:
        """The cues this payload completes, not seen before, in order; or the raw payload."""
        try:
            if text.startswith("~p"):
                return self._fresh(self._part(text))
            self._cut_off()
            if text.startswith("~z"):
                return self._fresh(_compressed(text))
            cues = parse_envelope(text)
            if cues is None:
                return [RawPayload(text)]
            return self._fresh(cues)
        except _Damaged as damage:
            self._report(damage.reason, damage.detail)
            return []

    def _part(self, text: str) -> list[DecodedCue]:
        frame = _frame(text)
        if len(frame) < 8:
            raise _Damaged("corrupt", "a part shorter than its header")
        header, crc, index, count = frame[0], int.from_bytes(frame[1:5]), frame[5], frame[6]
        if count < 2 or index >= count:
            raise _Damaged("corrupt", f"part {index} of {count}")
        assembly = self._assembly
        if assembly is not None and (assembly.crc, assembly.count) == (crc, count):
            held = len(assembly.segments)
            if index == held:
                assembly.segments.append(frame[7:])
                if index < count - 1:
                    return []
                self._assembly = None
                return _inflate_envelope(assembly.header, b"".join(assembly.segments), crc)
            if index < held:  # a part sent again (delivery is at least once)
                return []
        self._cut_off()
        if index == 0:
            _dictionary(header)
            self._assembly = _Assembly(crc, count, header, [frame[7:]])
        # A later part without its start: joined mid-cue, so nothing of it can be handed over.
        return []

    def _cut_off(self) -> None:
        assembly, self._assembly = self._assembly, None
        if assembly is not None:
            self._report(
                "incomplete",
                f"a cue in parts stopped after {len(assembly.segments)} of {assembly.count}",
            )

    def _report(self, reason: DamageReason, detail: str) -> None:
        self.damaged += 1
        if self._on_damage is not None:
            self._on_damage(Damage(reason, detail))

    def _fresh(self, cues: list[DecodedCue]) -> list[Decoded]:
        fresh: list[Decoded] = []
        for cue in cues:
            if cue.id in self._seen:
                continue
            self._seen[cue.id] = None
            if len(self._seen) > self._limit:
                self._seen.popitem(last=False)
            fresh.append(cue)
        return fresh


def parse_envelope(text: str | bytes) -> list[DecodedCue] | None:
    """The cues of a plain envelope, repeats included, or None if `text` is not one."""
    try:
        envelope = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(envelope, dict)
        or envelope.get("v") != ENVELOPE_VERSION
        or isinstance(envelope.get("v"), bool)
        or not isinstance(envelope.get("c"), list)
    ):
        return None
    cues: list[DecodedCue] = []
    for item in envelope["c"]:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("i"), str)
            and item["i"]
            and isinstance(item.get("t"), str)
            and "d" in item
        ):
            return None
        cues.append(DecodedCue(item["i"], item["t"], item["d"]))
    return cues


def _frame(text: str) -> bytes:
    if len(text) % 5 == 3:  # a last group of one character cannot hold a byte
        raise _Damaged("corrupt", "base85 text of impossible length")
    try:
        return base64.b85decode(text[2:].encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error) as exc:
        raise _Damaged("corrupt", f"not base85: {exc}") from None


def _compressed(text: str) -> list[DecodedCue]:
    frame = _frame(text)
    if len(frame) < 6:
        raise _Damaged("corrupt", "a compressed payload shorter than its header")
    return _inflate_envelope(frame[0], frame[5:], int.from_bytes(frame[1:5]))


def _dictionary(header: int) -> bytes:
    version, dictionary = header >> 4, header & 0x0F
    if version != FORMAT_VERSION or dictionary not in DICTIONARIES:
        raise _Damaged("unsupported", f"format {version}, dictionary {dictionary}")
    return DICTIONARIES[dictionary]


def _inflate_envelope(header: int, stream: bytes, crc: int) -> list[DecodedCue]:
    inflater = zlib.decompressobj(-15, zdict=_dictionary(header))
    try:
        envelope = inflater.decompress(stream, MAX_ENVELOPE_BYTES + 1)
    except zlib.error as exc:
        raise _Damaged("corrupt", f"not deflate: {exc}") from None
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise _Damaged("corrupt", "inflates past 65536 bytes")
    if not inflater.eof:  # bytes after its end are ignored, as every inflater does
        raise _Damaged("corrupt", "the deflate stream is truncated")
    if zlib.crc32(envelope) != crc:
        raise _Damaged("corrupt", "CRC-32 mismatch")
    cues = parse_envelope(envelope)
    if cues is None:
        raise _Damaged("corrupt", "the inflated text is not an envelope")
    return cues
