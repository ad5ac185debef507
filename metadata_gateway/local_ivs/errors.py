"""IVS error names, their HTTP statuses, and the exception that makes the local IVS answer one."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Each modeled IVS error and the status botocore's IVS model gives it; botocore picks the
# exception class from the x-amzn-ErrorType header, so the name matters more than the status.
MODELED_ERRORS: Mapping[str, int] = MappingProxyType(
    {
        "ValidationException": 400,
        "ServiceQuotaExceededException": 402,
        "AccessDeniedException": 403,
        "PendingVerification": 403,
        "ResourceNotFoundException": 404,
        "ChannelNotBroadcasting": 404,
        "ConflictException": 409,
        "ThrottlingException": 429,
        "InternalServerException": 500,
        "ServiceUnavailable": 503,
        "StreamUnavailable": 503,
    }
)

# Not in the model: the name AWS front ends give a path that names no operation.
UNKNOWN_OPERATION = "UnknownOperationException"
_STATUSES: Mapping[str, int] = MappingProxyType({**MODELED_ERRORS, UNKNOWN_OPERATION: 404})


class IvsError(Exception):
    """An IVS error answer: the error name, its HTTP status and the human-readable message."""

    def __init__(self, name: str, message: str) -> None:
        if name not in _STATUSES:
            raise ValueError(f"unknown IVS error name {name!r}")
        super().__init__(f"{name}: {message}")
        self.name = name
        self.status = _STATUSES[name]
        self.message = message

    def __repr__(self) -> str:
        return f"<IvsError {self.name} {self.status} {self.message!r}>"


def validation(message: str) -> IvsError:
    """Return a ValidationException with `message`."""
    return IvsError("ValidationException", message)


def not_found(message: str) -> IvsError:
    """Return a ResourceNotFoundException with `message`."""
    return IvsError("ResourceNotFoundException", message)


def batch_error(arn: str) -> dict[str, str]:
    """The `errors` entry of a BatchGet* answer for an ARN that names nothing."""
    return {
        "arn": arn,
        "code": "ResourceNotFoundException",
        "message": f"Resource: {arn} not found",
    }
