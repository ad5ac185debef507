"""Where accepted cues are kept: the seam between the web layer and the gateway's queues."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from metadata_gateway.cues import Cue
from metadata_gateway.gateway import Accepted, Gateway


class Intake(Protocol):
    """Accepts validated cues for keeping; answers only once they are kept."""

    async def submit(
        self,
        objs: Sequence[object],
        *,
        batch: bool = False,
        authorize: Callable[[Sequence[Cue]], None] | None = None,
    ) -> list[Accepted]:
        """Validate, authorize and keep cues, all or none; raise `CueError` for a refusal."""

    def unavailable(self) -> str | None:
        """Why no cue can be accepted now (readiness fails), or None."""


class LocalIntake:
    """Cues kept in this process's queues: `Gateway.submit`, which never waits."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def __repr__(self) -> str:
        return f"<LocalIntake {self.gateway!r}>"

    async def submit(
        self,
        objs: Sequence[object],
        *,
        batch: bool = False,
        authorize: Callable[[Sequence[Cue]], None] | None = None,
    ) -> list[Accepted]:
        """Queue the cues in this process."""
        return self.gateway.submit(objs, batch=batch, authorize=authorize)

    def unavailable(self) -> str | None:
        """A local queue is always there."""
        return None
