"""Points in time as clients and AWS write them."""

from __future__ import annotations

from datetime import datetime


def aware_timestamp(text: str) -> float | None:
    """Unix seconds of an ISO 8601 / RFC 3339 time that names its offset; None for any other
    text, since a time without an offset could be any of 24 hours."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None
