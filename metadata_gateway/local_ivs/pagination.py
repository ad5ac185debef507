"""Opaque nextToken values and the paging of ordered listings that use them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from metadata_gateway.local_ivs.errors import validation
from metadata_gateway.local_ivs.validation import check_int_range, check_pagination_token

T = TypeVar("T")

# A version prefix lets the token format change without misreading older tokens.
_TOKEN_PREFIX = "lv1"


def encode_token(listing: str, position: int) -> str:
    """Return an opaque token, in PaginationToken's alphabet, resuming `listing` at `position`."""
    raw = f"{_TOKEN_PREFIX}:{listing}:{position}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(listing: str, token: str) -> int:
    """Return the position `token` resumes `listing` at; ValidationException if it is not ours."""
    check_pagination_token("nextToken", token)
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
        prefix, rest = raw.split(":", 1)
        token_listing, position = rest.rsplit(":", 1)  # a listing's name may hold colons
        if prefix != _TOKEN_PREFIX or token_listing != listing:
            raise ValueError(token_listing)
        return int(position)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise validation("The nextToken is invalid or expired") from None


def paginate(
    items: Sequence[T],
    *,
    position_of: Callable[[T], int],
    listing: str,
    next_token: str | None,
    max_results: int,
) -> tuple[list[T], str | None]:
    """Return one page of `items` (sorted by `position_of`) and the token for the next, if any."""
    start = decode_token(listing, next_token) if next_token else 0
    remaining = [item for item in items if position_of(item) >= start]
    page = remaining[:max_results]
    if len(remaining) > max_results:
        return page, encode_token(listing, position_of(remaining[max_results]))
    return page, None


class _Positioned(Protocol):
    @property
    def position(self) -> int:
        """Its place in its listing."""


def position(item: _Positioned) -> int:
    """Where an item stands in its listing (the order it was created or started in)."""
    return item.position


def max_results_of(value: int | None, default: int, maximum: int) -> int:
    """A request's maxResults, checked against the model's bound, or the default."""
    if value is None:
        return default
    check_int_range("maxResults", value, 1, maximum)
    return value
