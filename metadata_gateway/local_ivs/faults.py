"""Injected PutMetadata faults: error answers, added latency and dropped connections, by chance."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from metadata_gateway.local_ivs.errors import MODELED_ERRORS
from metadata_gateway.local_ivs.validation import is_channel_arn

# Enough to simulate a slow IVS without letting a typo park a request for an hour.
MAX_LATENCY_MS = 60_000
_FIELDS = frozenset({"error", "rate", "latency_ms", "disconnect_rate", "channelArn"})


class FaultSpecError(ValueError):
    """A fault description that cannot be used; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to a share of PutMetadata calls, on one channel or (channel_arn None) on all."""

    error: str | None = None
    rate: float = 0.0
    latency_ms: float = 0.0
    disconnect_rate: float = 0.0
    channel_arn: str | None = None

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in MODELED_ERRORS:
            raise FaultSpecError(
                f"error must be one of {', '.join(sorted(MODELED_ERRORS))}, not {self.error!r}"
            )
        for name, share in (("rate", self.rate), ("disconnect_rate", self.disconnect_rate)):
            if not 0.0 <= share <= 1.0:
                raise FaultSpecError(f"{name} must be between 0 and 1, not {share}")
        if self.rate > 0 and self.error is None:
            raise FaultSpecError("a rate above 0 needs an error name")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise FaultSpecError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}")
        if self.channel_arn is not None and not is_channel_arn(self.channel_arn):
            raise FaultSpecError(f"channelArn is not a channel ARN: {self.channel_arn!r}")

    @classmethod
    def from_json(cls, body: object) -> Fault:
        """Build a fault from the admin API's JSON body, or raise FaultSpecError."""
        if not isinstance(body, Mapping):
            raise FaultSpecError("the body must be a JSON object")
        unknown = set(body) - _FIELDS
        if unknown:
            raise FaultSpecError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        error = body.get("error")
        channel_arn = body.get("channelArn")
        if error is not None and not isinstance(error, str):
            raise FaultSpecError("error must be a string")
        if channel_arn is not None and not isinstance(channel_arn, str):
            raise FaultSpecError("channelArn must be a string")
        # Naming an error without a rate means "fail every call", the obvious reading.
        default_rate = 1.0 if error is not None else 0.0
        return cls(
            error=error,
            rate=_number(body, "rate", default_rate),
            latency_ms=_number(body, "latency_ms"),
            disconnect_rate=_number(body, "disconnect_rate"),
            channel_arn=channel_arn,
        )

    def to_json(self) -> dict[str, object]:
        """Return the fault as the admin API shows it."""
        return {
            "error": self.error,
            "rate": self.rate,
            "latency_ms": self.latency_ms,
            "disconnect_rate": self.disconnect_rate,
            "channelArn": self.channel_arn,
        }


def _number(body: Mapping[str, object], name: str, default: float = 0.0) -> float:
    value = body.get(name, default)
    # JSON true/false would pass as 1/0 through isinstance(int); refuse them.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{name} must be a number")
    return float(value)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What happens to one call: wait `latency_s`, then drop the connection or answer `error`."""

    latency_s: float
    disconnect: bool
    error: str | None


class FaultInjector:
    """Holds the active faults (one per channel, one for all) and rolls the dice for each call."""

    __slots__ = ("_faults", "_rng")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._faults: dict[str | None, Fault] = {}

    def __repr__(self) -> str:
        return f"<FaultInjector faults={len(self._faults)}>"

    @property
    def faults(self) -> list[Fault]:
        """The active faults, the account-wide one (if any) first."""
        return sorted(self._faults.values(), key=lambda fault: fault.channel_arn or "")

    def set(self, fault: Fault) -> None:
        """Make `fault` the active fault of its channel (or of all), replacing the previous one."""
        self._faults[fault.channel_arn] = fault

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def decide(self, channel_arn: str | None) -> FaultDecision | None:
        """Return what to do to a call on `channel_arn`; its own fault overrides the global one."""
        if not self._faults:
            return None
        fault = self._faults.get(channel_arn) if channel_arn is not None else None
        if fault is None:
            fault = self._faults.get(None)
        if fault is None:
            return None
        # Draw only for shares in play, so one seed and one set of faults give one sequence.
        disconnect = fault.disconnect_rate > 0 and self._rng.random() < fault.disconnect_rate
        error = None
        if not disconnect and fault.rate > 0 and self._rng.random() < fault.rate:
            error = fault.error
        return FaultDecision(latency_s=fault.latency_ms / 1000, disconnect=disconnect, error=error)
