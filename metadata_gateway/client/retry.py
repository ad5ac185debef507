"""When to try again: exponential backoff with jitter, within a number of retries and a deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_DOUBLINGS = 32  # 2**32 times any sane initial delay is past any maximum
RETRY_AFTER_JITTER = 0.1  # spread clients told the same Retry-After over 10% more, never less


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: attempt n waits a random half to all of `initial * 2**n`, capped."""

    initial: float = 0.1
    maximum: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")

    def delay(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (counted from 0)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** min(max(attempt, 0), MAX_DOUBLINGS))
        return ceiling * (0.5 + 0.5 * rand())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry: at most `max_retries` times, none starting after `deadline` seconds."""

    max_retries: int = 5
    deadline: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.deadline < 0:
            raise ValueError("max_retries and deadline must not be negative")

    def wait(
        self,
        retry: int,
        *,
        started: float,
        now: float,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry number `retry` (from 0), or None to give up.

        `retry_after` is the wait the gateway asked for; without it the backoff decides.
        """
        if retry >= self.max_retries:
            return None
        if retry_after is not None:
            wait = retry_after * (1 + RETRY_AFTER_JITTER * rand())
        else:
            wait = self.backoff.delay(retry, rand=rand)
        if now + wait > started + self.deadline:
            return None
        return wait
