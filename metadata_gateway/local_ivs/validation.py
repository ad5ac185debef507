"""Checks of request members against the constraints of botocore's IVS model (2020-07-14)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping

from metadata_gateway.local_ivs import model
from metadata_gateway.local_ivs.errors import IvsError, validation

# Lengths and list sizes from the model's shapes (ChannelName, Tags, TagKey, ...).
MAX_CHANNEL_NAME_LENGTH = 128
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_BATCH_ARNS = 50
MAX_PAGINATION_TOKEN_LENGTH = 1024
# The model says only `min: 1`; the IVS docs and AWS's own samples cap the payload at 1 KB of UTF-8.
MAX_METADATA_BYTES = 1024
# Keys with this prefix belong to AWS; tagging APIs refuse them from callers.
RESERVED_TAG_PREFIX = "aws:"

# Patterns from botocore's model, never from the gateway: a wrong pattern there must fail here.
CHANNEL_ARN_PATTERN = model.pattern("ChannelArn")
MAX_ARN_LENGTH = model.max_length("ChannelArn")
CHANNEL_NAME_PATTERN = model.pattern("ChannelName")
STREAM_KEY_ARN_PATTERN = model.pattern("StreamKeyArn")
# The model's ResourceArn pattern has `[a-z-]/`, one character before the slash, which no real
# IVS ARN satisfies; IVS itself accepts `channel/...` and `stream-key/...`, so this allows a word.
RESOURCE_ARN_PATTERN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:([a-z-]+)/[a-zA-Z0-9-]+")
PAGINATION_TOKEN_PATTERN = model.pattern("PaginationToken")
# TagKey/TagValue use \p{L}\p{Z}\p{N} classes, which Python's re lacks: checked by category instead.
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_TAG_CATEGORIES = ("L", "Z", "N")


def optional_arn_pattern(resource_type: str) -> re.Pattern[str]:
    """Return the model's `^$|^arn:...:<resource_type>/...$` pattern for an optional linked ARN."""
    return re.compile(rf"|arn:aws:ivs:[a-z0-9-]+:[0-9]+:{re.escape(resource_type)}/[a-zA-Z0-9-]+")


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."


def invalid(field: str, value: object | None, constraint: str) -> IvsError:
    """Return a ValidationException worded like AWS's, leaving out the value when it is None."""
    shown = "" if value is None else f" '{_shown(value)}'"
    return validation(
        f"1 validation error detected: Value{shown} at '{field}' failed to satisfy constraint: "
        f"Member must {constraint}"
    )


def check_length(field: str, value: str, low: int, high: int) -> None:
    """Raise unless `value` has between `low` and `high` characters."""
    if len(value) < low:
        raise invalid(field, value, f"have length greater than or equal to {low}")
    if len(value) > high:
        raise invalid(field, value, f"have length less than or equal to {high}")


def check_pattern(field: str, value: str, pattern: re.Pattern[str]) -> None:
    """Raise unless the whole of `value` matches `pattern`."""
    if pattern.fullmatch(value) is None:
        raise invalid(field, value, f"satisfy regular expression pattern: {pattern.pattern}")


def is_channel_arn(value: str) -> bool:
    """Whether `value` is a channel ARN by the model's length and pattern."""
    return 1 <= len(value) <= MAX_ARN_LENGTH and CHANNEL_ARN_PATTERN.fullmatch(value) is not None


def check_channel_arn(field: str, value: str) -> None:
    """Raise unless `value` is a channel ARN as the model's ChannelArn shape allows."""
    check_length(field, value, 1, MAX_ARN_LENGTH)
    check_pattern(field, value, CHANNEL_ARN_PATTERN)


def check_stream_key_arn(field: str, value: str) -> None:
    """Raise unless `value` is a stream key ARN as the model's StreamKeyArn shape allows."""
    check_length(field, value, 1, MAX_ARN_LENGTH)
    check_pattern(field, value, STREAM_KEY_ARN_PATTERN)


def check_resource_arn(field: str, value: str) -> str:
    """Raise unless `value` is an IVS resource ARN; return its resource type (`channel`, ...)."""
    check_length(field, value, 1, MAX_ARN_LENGTH)
    match = RESOURCE_ARN_PATTERN.fullmatch(value)
    if match is None:
        raise invalid(field, value, f"satisfy regular expression pattern: {RESOURCE_ARN_PATTERN}")
    return match.group(1)


def check_linked_arn(field: str, value: str, resource_type: str) -> None:
    """Raise unless `value` is empty or an ARN of `resource_type` (recording configuration, ...)."""
    check_length(field, value, 0, MAX_ARN_LENGTH)
    check_pattern(field, value, optional_arn_pattern(resource_type))


def check_channel_name(field: str, value: str) -> None:
    """Raise unless `value` is a valid channel name (possibly empty)."""
    check_length(field, value, 0, MAX_CHANNEL_NAME_LENGTH)
    check_pattern(field, value, CHANNEL_NAME_PATTERN)


def check_enum(field: str, value: str, allowed: Collection[str]) -> None:
    """Raise unless `value` is one of `allowed`."""
    if value not in allowed:
        raise invalid(field, value, f"satisfy enum value set: [{', '.join(sorted(allowed))}]")


def check_int_range(field: str, value: int, low: int, high: int) -> None:
    """Raise unless `low <= value <= high`."""
    if value < low:
        raise invalid(field, value, f"have value greater than or equal to {low}")
    if value > high:
        raise invalid(field, value, f"have value less than or equal to {high}")


def check_arn_list(field: str, values: list[str], check: Callable[[str, str], None]) -> None:
    """Raise unless `values` has 1 to 50 entries, each passing `check`."""
    if not 1 <= len(values) <= MAX_BATCH_ARNS:
        raise invalid(field, None, f"have length between 1 and {MAX_BATCH_ARNS}")
    for index, value in enumerate(values):
        check(f"{field}.{index + 1}", value)


def check_pagination_token(field: str, value: str) -> None:
    """Raise unless `value` has the PaginationToken shape's length and alphabet."""
    check_length(field, value, 0, MAX_PAGINATION_TOKEN_LENGTH)
    check_pattern(field, value, PAGINATION_TOKEN_PATTERN)


def _is_tag_text(value: str) -> bool:
    return all(
        char in _TAG_PUNCTUATION or unicodedata.category(char).startswith(_TAG_CATEGORIES)
        for char in value
    )


def check_tag_key(field: str, key: str) -> None:
    """Raise unless `key` is a tag key the model allows and does not use AWS's reserved prefix."""
    check_length(field, key, 1, MAX_TAG_KEY_LENGTH)
    if not _is_tag_text(key):
        raise invalid(
            field, key, r"satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]+"
        )
    if key.lower().startswith(RESERVED_TAG_PREFIX):
        raise validation(f"Tag keys starting with '{RESERVED_TAG_PREFIX}' are reserved: '{key}'")


def check_tags(field: str, tags: Mapping[str, str]) -> None:
    """Raise unless `tags` has at most 50 entries, each a valid key and value."""
    if len(tags) > MAX_TAGS:
        raise invalid(field, None, f"have at most {MAX_TAGS} entries")
    for key, value in tags.items():
        check_tag_key(f"{field}.key", key)
        check_length(f"{field}.{key}", value, 0, MAX_TAG_VALUE_LENGTH)
        if not _is_tag_text(value):
            raise invalid(
                f"{field}.{key}",
                value,
                r"satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]*",
            )


def check_metadata(value: str) -> None:
    """Raise unless `value` is 1 to 1024 bytes of UTF-8; never echoes the (sensitive) payload."""
    if not value:
        raise invalid("metadata", None, "have length greater than or equal to 1")
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > MAX_METADATA_BYTES:
        raise validation(
            f"metadata is {size} bytes of UTF-8; the maximum is {MAX_METADATA_BYTES} bytes"
        )
