"""The one error type clients see: a stable machine-readable code, an HTTP status and a message."""

from __future__ import annotations

from typing import Any


class CueError(Exception):
    """A request the gateway refuses; the web layer maps it to a status and an error body."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.details = details
        self.close_connection = False  # set when the rest of the request cannot be trusted

    def body(self) -> dict[str, Any]:
        """The `error` object of the response: code, message, details and `retry_after_ms`."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, **self.details}
        if self.retry_after is not None:
            error["retry_after_ms"] = retry_after_ms(self.retry_after)
        return error

    def with_index(self, index: int) -> CueError:
        """The same error, naming the position of the offending cue in a batch."""
        return CueError(
            self.code,
            self.message,
            status=self.status,
            retry_after=self.retry_after,
            **{**self.details, "index": index},
        )

    def __repr__(self) -> str:
        return f"<CueError {self.code} {self.status}: {self.message}>"


def retry_after_ms(seconds: float) -> int:
    """Milliseconds to wait, rounded up so that a client waiting exactly that long is not early."""
    return max(1, -int(-seconds * 1000 // 1))


def invalid_cue(message: str, *, field: str) -> CueError:
    """A cue that does not match the schema, naming the offending field."""
    return CueError("invalid_cue", message, status=400, field=field)


def already_sent(cue_id: str, channel: str) -> CueError:
    """A cancel that came too late: the cue went out to IVS (409)."""
    return CueError(
        "already_sent",
        f"cue {cue_id!r} already went out to IVS",
        status=409,
        id=cue_id,
        channel=channel,
    )


def not_found(cue_id: str, channel: str) -> CueError:
    """A cancel of a cue the gateway does not hold (404)."""
    return CueError(
        "not_found",
        f"no cue {cue_id!r} is waiting on {channel}",
        status=404,
        id=cue_id,
        channel=channel,
    )
