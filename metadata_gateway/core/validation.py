"""Validation of one request: a decoded document in, the `Cue`s it holds (or one `CueError`) out.
The one place a request is checked; the transports only decode bytes and count answers."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from metadata_gateway.core.cues import DEFAULT_MAX_CUE_BYTES, Cue, id_factory, parse_cue
from metadata_gateway.core.errors import CueError

MAX_CUES_PER_REQUEST = 100
MAX_SCHEDULE_AHEAD_S = 24 * 3600  # not_before at most a day ahead


@dataclass(frozen=True, slots=True)
class CueRules:
    """What a cue is checked against: aliases, size, known regions, and how ids are made."""

    aliases: Mapping[str, str] = field(default_factory=dict)
    max_cue_bytes: int = DEFAULT_MAX_CUE_BYTES
    # Regions cues may name; each one costs an IVS client, so made-up ones are refused.
    regions: frozenset[str] | None = None
    new_id: Callable[[], str] = field(default_factory=id_factory)
    wall_clock: Callable[[], float] = time.time


def decode_json(body: bytes | str) -> Any:
    """Parse a request body; raise `invalid_json` for anything that is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CueError("invalid_json", f"the body is not valid JSON: {exc}", status=400) from None


def split_document(document: Any) -> tuple[list[Any], bool]:
    """The cue objects a document holds (one cue, or a `{"cues": [...]}` batch), and whether it
    was a batch."""
    if not (isinstance(document, dict) and "cues" in document and "channel" not in document):
        return [document], False
    cues = document["cues"]
    if not isinstance(cues, list) or not cues:
        raise CueError("invalid_cue", "cues must be a non-empty list", status=400, field="cues")
    extra = document.keys() - {"cues"}
    if extra:
        raise CueError(
            "invalid_cue", f"unknown field {sorted(extra)[0]!r}", status=400, field="cues"
        )
    return cues, True


def cue_count(document: Any) -> int:
    """How many cues a refusal of this document counts (a batch counts its cues)."""
    if isinstance(document, dict) and "cues" in document and "channel" not in document:
        cues = document["cues"]
        if isinstance(cues, list) and cues:
            return len(cues)
    return 1


def parse_cues(objs: Sequence[object], *, batch: bool, rules: CueRules) -> list[Cue]:
    """Validate the cue objects of one request; raise `CueError` for the first problem."""
    if len(objs) > MAX_CUES_PER_REQUEST:
        raise CueError(
            "invalid_cue",
            f"at most {MAX_CUES_PER_REQUEST} cues per request, not {len(objs)}",
            status=400,
            field="cues",
        )
    wall = rules.wall_clock()
    return [_parse(obj, index if batch else None, wall, rules) for index, obj in enumerate(objs)]


def _parse(obj: object, index: int | None, wall: float, rules: CueRules) -> Cue:
    try:
        cue = parse_cue(
            obj, aliases=rules.aliases, new_id=rules.new_id, max_cue_bytes=rules.max_cue_bytes
        )
        regions = rules.regions
        if regions is not None:
            region = cue.channel.split(":", 4)[3]
            if region not in regions:
                raise CueError(
                    "invalid_cue",
                    f"IVS has no region {region!r} (known: {', '.join(sorted(regions))})",
                    status=400,
                    field="channel",
                )
        if cue.not_before is not None and cue.not_before > wall + MAX_SCHEDULE_AHEAD_S:
            raise CueError(
                "invalid_cue",
                "not_before may be at most 24 hours ahead",
                status=400,
                field="not_before",
            )
    except CueError as exc:
        raise exc.with_index(index) if index is not None else exc from None
    return cue
