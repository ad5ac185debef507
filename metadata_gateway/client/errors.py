"""The errors the client raises: what the gateway refused, or that it could not be reached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

# The HTTP status the gateway gives each code; a WebSocket nack carries the code only.
STATUS_OF_CODE = {
    "invalid_json": 400,
    "invalid_cue": 400,
    "invalid_op": 400,
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_channel": 404,
    "not_found": 404,
    "already_sent": 409,
    "cue_too_large": 413,
    "body_too_large": 413,
    "queue_full": 429,
    "client_rate_limited": 429,
    "shutting_down": 503,
}
# A refused WebSocket upgrade has a status but no body the client reads: its likely code.
CODE_OF_STATUS = {401: "unauthorized", 403: "forbidden", 503: "shutting_down"}
UNAVAILABLE = 0  # the status of an error that never got an HTTP answer


class GatewayError(Exception):
    """A request the gateway refused, with its HTTP status, stable `code`, message and details."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status} {self.code}: {self.message}>"

    @property
    def retry_after(self) -> float | None:
        """Seconds the gateway asked the client to wait before trying again, if it said."""
        value = self.details.get("retry_after_ms")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return value / 1000
        return None

    @classmethod
    def from_error(cls, status: int | None, error: object) -> GatewayError:
        """The error an `{"code", "message", ...}` object describes (a body's or a nack's)."""
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            return cls(status or UNAVAILABLE, "invalid_response", f"unexpected error: {error!r}")
        code: str = error["code"]
        message = error.get("message")
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        if status is None:
            status = STATUS_OF_CODE.get(code, UNAVAILABLE)
        return cls(status, code, message if isinstance(message, str) else "", details)

    @classmethod
    def from_body(cls, status: int, body: bytes, *, retry_after: str | None = None) -> GatewayError:
        """The error an HTTP error response describes; `retry_after` is its header, if any."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body[:200].decode(errors="replace")
            document = {"error": {"code": f"http_{status}", "message": text}}
        error = document.get("error") if isinstance(document, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            error = {"code": f"http_{status}", "message": f"unexpected body {document!r}"[:200]}
        seconds = retry_after_seconds(retry_after)
        if "retry_after_ms" not in error and seconds is not None:
            # The body's milliseconds are exact; the header (whole seconds) is the fallback.
            error = {**error, "retry_after_ms": seconds * 1000}
        return cls.from_error(status, error)


def retry_after_seconds(header: str | None) -> float | None:
    """A `Retry-After` header in seconds, if it holds a number (the gateway never sends dates)."""
    try:
        seconds = float(header) if header is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached (or the stream closed) before it answered."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(UNAVAILABLE, code, message)
