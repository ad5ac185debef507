"""The seam between the scheduler and Amazon IVS: one call, and what its answer means."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    """How a PutMetadata call ended; the values are the `outcome` label of the request metric."""

    OK = "ok"
    THROTTLED = "throttled"
    NOT_BROADCASTING = "not_broadcasting"
    NOT_FOUND = "not_found"
    ACCESS_DENIED = "access_denied"
    VALIDATION = "validation"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    CLIENT_ERROR = "client_error"  # any other 4xx: IVS refused the call for a reason we don't model

    @property
    def retryable(self) -> bool:
        """Whether the cues of a call that ended so go back to the queue (until their TTL)."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        Outcome.THROTTLED,
        Outcome.NOT_BROADCASTING,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.CONNECTION_ERROR,
    }
)

# IVS error names (x-amzn-ErrorType) and what they mean for the cues of the call.
ERROR_OUTCOMES = {
    "ThrottlingException": Outcome.THROTTLED,
    "ChannelNotBroadcasting": Outcome.NOT_BROADCASTING,
    "ResourceNotFoundException": Outcome.NOT_FOUND,
    "AccessDeniedException": Outcome.ACCESS_DENIED,
    "PendingVerification": Outcome.ACCESS_DENIED,
    "ValidationException": Outcome.VALIDATION,
    "InternalServerException": Outcome.SERVER_ERROR,
    "ServiceUnavailable": Outcome.SERVER_ERROR,
    "StreamUnavailable": Outcome.SERVER_ERROR,
}


class IvsCallError(Exception):
    """A PutMetadata call that did not succeed, classified."""

    def __init__(self, outcome: Outcome, message: str, *, error_name: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.error_name = error_name


class MetadataSink(Protocol):
    """Where PutMetadata calls go: Amazon IVS through aiobotocore, or anything that acts like it."""

    async def put_metadata(self, *, region: str, channel_arn: str, metadata: str) -> None:
        """Send one payload; raise `IvsCallError` on any failure."""
        ...
