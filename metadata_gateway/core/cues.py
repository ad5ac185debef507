"""Parsing and validating cues: a JSON object in, a `Cue` ready to queue (or a `CueError`) out."""

from __future__ import annotations

import itertools
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.envelope import ENVELOPE_OVERHEAD, MAX_METADATA_BYTES, encode_item
from metadata_gateway.core.errors import CueError, invalid_cue
from metadata_gateway.core.moments import aware_timestamp
from metadata_gateway.core.wire import MAX_ENVELOPE_BYTES, RESERVED_PREFIXES

MAX_ID_LENGTH = 64
MAX_KEY_LENGTH = 128
MAX_TTL_MS = 24 * 3600 * 1000  # nothing in a live show should wait for longer than a day
CUE_TYPES = ("quiz", "poll", "caption", "custom", "raw", "state")
DEFAULT_TTL_S = {"caption": 4.0, "poll": 10.0, "state": 600.0}
FALLBACK_TTL_S = 30.0  # quiz, custom and raw cues
CUE_FIELDS = frozenset(
    {
        "channel",
        "type",
        "data",
        "id",
        "key",
        "ttl_ms",
        "priority",
        "not_before",
        "repeat_ms",
        "persist",
    }
)
MIN_REPEAT_MS = 1_000  # a state re-sent more often than once a second would crowd out fresh cues
DEFAULT_REPEAT_MS = 5_000
MAX_REPEAT_MS = 3_600_000
DEFAULT_MAX_CUE_BYTES = 16_384  # a cue's envelope; past one payload it travels in parts
MAX_CUE_BYTES = MAX_ENVELOPE_BYTES  # what the decoders accept, whatever the setting


class Priority(IntEnum):
    """Lower values go first; the order of cues within one priority is their order of acceptance."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


@dataclass(frozen=True, slots=True)
class Cue:
    """A validated cue with its channel resolved to an ARN and its envelope item encoded."""

    id: str
    channel: str
    type: str
    item: bytes  # the cue's entry in the envelope, or the verbatim payload of a raw cue
    key: str | None
    ttl: float
    priority: Priority
    client_id: bool  # the id came from the client, so it is an idempotency key
    not_before: float | None = None  # unix seconds; held until then
    repeat: float | None = None  # seconds between re-sends of a state cue
    persist: bool = False  # a state that goes on repeating after the stream session ends

    @property
    def raw(self) -> bool:
        """Raw cues travel alone and verbatim, never inside the envelope."""
        return self.type == "raw"


ID_ALPHABET = string.ascii_letters + string.digits
ID_PREFIX_LENGTH = 3  # then a base-36 counter: "Xy71", "Xy72", ... short in every payload
ID_PREFIXES = len(ID_ALPHABET) ** ID_PREFIX_LENGTH  # 238,328


def id_prefix(number: int) -> str:
    """The id prefix numbered `number` (modulo `ID_PREFIXES`), as long as a random one."""
    number %= ID_PREFIXES
    out = ""
    for _ in range(ID_PREFIX_LENGTH):
        number, rem = divmod(number, len(ID_ALPHABET))
        out = ID_ALPHABET[rem] + out
    return out


class IdFactory:
    """Short ids: a prefix, then a counter; a process picks its prefix at random, a replica
    takes a numbered one from Redis once it can (`distributed/runtime.py`)."""

    __slots__ = ("_counter", "prefix")

    def __init__(self) -> None:
        self.prefix = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_PREFIX_LENGTH))
        self._counter: Iterator[int] = itertools.count(1)

    def __repr__(self) -> str:
        return f"<IdFactory prefix={self.prefix!r}>"

    def __call__(self) -> str:
        return self.prefix + _base36(next(self._counter))


def id_factory() -> Callable[[], str]:
    """Return a generator of short ids, unique in this process and unlikely to repeat across."""
    return IdFactory()


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
        if value == 0:
            return out


def resolve_channel(value: object, aliases: Mapping[str, str]) -> str:
    """The channel ARN that `value` names: an ARN as given, or a configured alias."""
    if not isinstance(value, str) or not value:
        raise invalid_cue("channel must be a channel ARN or an alias", field="channel")
    if parse_channel_arn(value) is not None:
        return value
    arn = aliases.get(value)
    if arn is not None:
        return arn
    if value.startswith("arn:"):
        raise invalid_cue(
            "channel is not a valid IVS channel ARN (arn:aws:ivs:<region>:<account>:channel/<id>)",
            field="channel",
        )
    raise CueError("unknown_channel", f"no channel is configured with alias {value!r}", status=404)


def parse_cue(
    obj: object,
    *,
    aliases: Mapping[str, str],
    new_id: Callable[[], str],
    max_cue_bytes: int = DEFAULT_MAX_CUE_BYTES,
) -> Cue:
    """Validate one cue object; raise `CueError` naming the first field that is wrong."""
    if not isinstance(obj, dict):
        raise invalid_cue("a cue must be a JSON object", field="")
    unknown = obj.keys() - CUE_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise invalid_cue(f"unknown field {name!r}", field=name)
    channel = resolve_channel(obj.get("channel"), aliases)
    cue_type = obj.get("type")
    if cue_type not in CUE_TYPES:
        raise invalid_cue(f"type must be one of {', '.join(CUE_TYPES)}", field="type")
    if "data" not in obj:
        raise invalid_cue("data is required", field="data")
    data = obj["data"]
    _check_data(cue_type, data)
    cue_id, client_id = _parse_id(obj.get("id"), new_id)
    key = _parse_key(obj.get("key"), cue_type, data)
    ttl = _parse_ttl(obj.get("ttl_ms"), cue_type)
    priority = _parse_priority(obj.get("priority"))
    not_before = _parse_not_before(obj.get("not_before"))
    repeat = _parse_repeat(obj.get("repeat_ms"), cue_type)
    persist = _parse_persist(obj.get("persist"), cue_type)
    if cue_type == "raw":
        item = data.encode()
        size, limit = len(item), MAX_METADATA_BYTES
    else:
        item = _encode(cue_id, cue_type, data)
        size, limit = len(item) + ENVELOPE_OVERHEAD, max_cue_bytes
    if size > limit:
        raise CueError(
            "cue_too_large",
            f"the cue's envelope takes {size} bytes; the limit is {limit}"
            if cue_type != "raw"
            else f"a raw cue takes {size} bytes in its PutMetadata payload; IVS allows {limit}",
            status=413,
            size=size,
            limit=limit,
        )
    return Cue(
        id=cue_id,
        channel=channel,
        type=cue_type,
        item=item,
        key=key,
        ttl=ttl,
        priority=priority,
        client_id=client_id,
        not_before=not_before,
        repeat=repeat,
        persist=persist,
    )


def _encode(cue_id: str, cue_type: str, data: Any) -> bytes:
    try:
        return encode_item(cue_id, cue_type, data)
    except TypeError as exc:  # orjson: integers beyond 64 bits, nesting deeper than 254
        raise invalid_cue(f"data cannot be encoded: {exc}", field="data") from None


def _check_data(cue_type: str, data: object) -> None:
    if cue_type == "raw":
        if not isinstance(data, str) or not data:
            raise invalid_cue("data of a raw cue must be a non-empty string", field="data")
        if data.startswith(RESERVED_PREFIXES):
            raise invalid_cue(
                "data of a raw cue may not start with ~z or ~p: decoders read those as the "
                "gateway's compressed payloads",
                field="data",
            )
        return
    if not isinstance(data, dict):
        raise invalid_cue(f"data of a {cue_type} cue must be an object", field="data")
    required = {"quiz": "question_id", "poll": "poll_id", "caption": "text"}.get(cue_type)
    if required is not None and data.get(required) in (None, ""):
        raise invalid_cue(f"a {cue_type} cue needs data.{required}", field=f"data.{required}")
    if cue_type == "caption":
        if not isinstance(data["text"], str):
            raise invalid_cue("data.text must be a string", field="data.text")
        if not isinstance(data.get("lang", ""), str):
            raise invalid_cue("data.lang must be a string", field="data.lang")
        if not isinstance(data.get("final", True), bool):
            raise invalid_cue("data.final must be true or false", field="data.final")


def _parse_id(value: object, new_id: Callable[[], str]) -> tuple[str, bool]:
    if value is None:
        return new_id(), False
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise invalid_cue(f"id must be a string of 1 to {MAX_ID_LENGTH} characters", field="id")
    return value, True


def _parse_key(value: object, cue_type: str, data: Any) -> str | None:
    if value is not None:
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY_LENGTH:
            raise invalid_cue(
                f"key must be a string of 1 to {MAX_KEY_LENGTH} characters", field="key"
            )
        return value
    if cue_type == "state":
        raise invalid_cue("a state cue needs a key (e.g. quiz:current)", field="key")
    if cue_type == "poll":
        return f"poll:{data['poll_id']}"
    if cue_type == "caption" and data.get("final", True) is False:
        return f"caption:{data.get('lang') or 'default'}"
    return None


def _parse_ttl(value: object, cue_type: str) -> float:
    if value is None:
        return DEFAULT_TTL_S.get(cue_type, FALLBACK_TTL_S)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TTL_MS:
        raise invalid_cue(f"ttl_ms must be an integer from 1 to {MAX_TTL_MS}", field="ttl_ms")
    return value / 1000


def _parse_priority(value: object) -> Priority:
    if value is None:
        return Priority.NORMAL
    if not isinstance(value, str) or value.upper() not in Priority.__members__:
        raise invalid_cue("priority must be high, normal or low", field="priority")
    return Priority[value.upper()]


def _parse_not_before(value: object) -> float | None:
    """Unix seconds from unix milliseconds or an RFC 3339 time with an offset."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise invalid_cue("not_before must not be negative", field="not_before")
        return value / 1000
    if isinstance(value, str):
        moment = aware_timestamp(value)
        if moment is not None:
            return moment
    raise invalid_cue(
        "not_before must be unix milliseconds or an RFC 3339 time with an offset "
        "(2026-11-28T20:14:30Z)",
        field="not_before",
    )


def _parse_repeat(value: object, cue_type: str) -> float | None:
    if cue_type != "state":
        if value is not None:
            raise invalid_cue("repeat_ms applies to state cues only", field="repeat_ms")
        return None
    if value is None:
        return DEFAULT_REPEAT_MS / 1000
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_REPEAT_MS <= value <= MAX_REPEAT_MS
    ):
        raise invalid_cue(
            f"repeat_ms must be an integer from {MIN_REPEAT_MS} to {MAX_REPEAT_MS}",
            field="repeat_ms",
        )
    return value / 1000


def _parse_persist(value: object, cue_type: str) -> bool:
    if value is None:
        return False
    if cue_type != "state":
        raise invalid_cue("persist applies to state cues only", field="persist")
    if not isinstance(value, bool):
        raise invalid_cue("persist must be true or false", field="persist")
    return value
