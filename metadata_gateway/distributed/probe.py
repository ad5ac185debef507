"""How this replica's Redis calls go: round-trip times and errors by operation, for /metrics."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator

from redis.exceptions import RedisError

# The operations timed: bounded, so they can be metric labels.
OPERATIONS = ("accept", "budget", "cancel", "heartbeat", "settle", "view")


def _ignore(operation: str, seconds: float) -> None:
    """No metrics attached yet."""


class RedisProbe:
    """Times Redis round trips and counts their errors, by operation."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.observe: Callable[[str, float], None] = _ignore  # set by the metrics

    def __repr__(self) -> str:
        return f"<RedisProbe errors={dict(self.errors)}>"

    @contextlib.contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time the Redis call in the block; count it as an error if it raises one."""
        start = time.perf_counter()
        try:
            yield
        except (RedisError, OSError):
            self.errors[operation] += 1
            raise
        self.observe(operation, time.perf_counter() - start)
