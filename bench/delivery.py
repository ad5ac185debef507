"""From what was accepted and what IVS recorded to delivery figures: lost cues, latency, windows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.analysis import max_in_window, ms, percentile
from bench.load import Submitted
from bench.observe import Event, labelled

DROPPED = "metadata_gateway_cues_dropped_total"


def accounting(
    accepted: Sequence[Submitted], events: Sequence[Event], samples: dict[str, float]
) -> dict[str, Any]:
    """Every accepted cue delivered once, dropped with a reason, or lost; and the surplus."""
    delivered = Counter((event.channel, cue_id) for event in events for cue_id in event.ids)
    keys = {(s.channel, s.id) for s in accepted}
    dropped = labelled(samples, DROPPED)
    dropped_total = int(sum(dropped.values()))
    undelivered = sum(1 for key in keys if key not in delivered)
    return {
        "accepted": len(keys),
        "delivered": sum(1 for key in keys if key in delivered),
        "dropped": {reason: int(n) for reason, n in dropped.items() if n},
        # Counted, not matched by id: the metric has no ids. A drop we cannot see is lost.
        "lost_cues": max(0, undelivered - dropped_total),
        "duplicate_deliveries": sum(n - 1 for n in delivered.values() if n > 1),
        "unknown_deliveries": sum(1 for key in delivered if key not in keys),
    }


def latencies(accepted: Sequence[Submitted], events: Sequence[Event]) -> dict[str, Any]:
    """Accepted (202 received) to IVS arrival, per delivered cue, in milliseconds."""
    arrival: dict[tuple[str, str], float] = {}
    for event in events:
        for cue_id in event.ids:
            arrival.setdefault((event.channel, cue_id), event.time)
    from_202 = []
    from_send = []
    for submitted in accepted:
        at = arrival.get((submitted.channel, submitted.id))
        if at is not None:
            from_202.append(at - submitted.accepted_at)
            from_send.append(at - submitted.sent_at)
    return {
        "p50_ms": ms(percentile(from_202, 50)),
        "p99_ms": ms(percentile(from_202, 99)),
        "max_ms": ms(max(from_202, default=None)),
        # From the moment the request left the client: an upper bound on the same interval.
        "from_request_p50_ms": ms(percentile(from_send, 50)),
        "from_request_p99_ms": ms(percentile(from_send, 99)),
    }


def calls_in_window(events: Sequence[Event]) -> int:
    """The most calls IVS recorded in any 1 s sliding window."""
    return max_in_window(event.time for event in events)


def tightest_span_ms(events: Sequence[Event], limit: int) -> float | None:
    """The shortest time between a call and the `limit`-th after it, in ms: IVS needs > 1000.

    A maximum count of calls per window says only yes or no; this says by how much. (The local
    IVS limits by its monotonic clock and stamps events by the wall clock, read a moment later,
    so a span within a few microseconds of 1000 ms can show as limit + 1 in a window.)
    """
    times = sorted(event.time for event in events)
    spans = [times[i + limit] - times[i] for i in range(len(times) - limit)]
    return ms(min(spans)) if spans else None
