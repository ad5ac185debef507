"""Counts of what each IVS operation answered: `accepted` or the name of the error returned."""

from __future__ import annotations

from collections import Counter

ACCEPTED = "accepted"
# Not an IVS error: the local IVS closed the connection without answering (an injected fault).
DISCONNECTED = "Disconnected"


class OperationStats:
    """Per-operation outcome counters, as `GET /_local/stats` shows them."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = {}

    def __repr__(self) -> str:
        total = sum(sum(counts.values()) for counts in self._counts.values())
        return f"<OperationStats operations={len(self._counts)} calls={total}>"

    def count(self, operation: str, outcome: str) -> None:
        """Count one answer of `operation` with `outcome` (`accepted` or an error name)."""
        counts = self._counts.get(operation)
        if counts is None:
            counts = self._counts[operation] = Counter()
        counts[outcome] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Return a copy: {operation: {"accepted": n, "<ErrorName>": n, ...}}."""
        return {
            operation: {ACCEPTED: counts.get(ACCEPTED, 0), **counts}
            for operation, counts in sorted(self._counts.items())
        }

    def clear(self) -> None:
        """Reset every counter."""
        self._counts.clear()
