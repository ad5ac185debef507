"""Admission: whether cues fit their bounds, and if not, the `queue_full` answer with a
`Retry-After` computed from how fast the queue drains. Plain numbers in, numbers or errors out;
shared by the local and the Redis intake."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from metadata_gateway.core.envelope import MAX_ITEM_BYTES, MAX_METADATA_BYTES
from metadata_gateway.core.errors import CueError
from metadata_gateway.core.rate_limit import WINDOW_S

DRAIN_SAFETY = 0.85  # calls take time and share the account: promise a little less than the rate
MIN_RETRY_AFTER_S = 0.05
BURST_SLACK_S = 0.05  # a call's own time, so that room exists when the client comes back
DEFAULT_ITEM_BYTES = 100.0  # the size assumed for an empty queue's cues
SHUTDOWN_RETRY_AFTER_S = 5.0  # long enough for a replacement process to come up


@dataclass(frozen=True, slots=True)
class Bound:
    """At most `cues` cues and `bytes` bytes."""

    cues: int
    bytes: int

    def excess(self, held: tuple[int, int], adding: tuple[int, int]) -> tuple[int, int] | None:
        """By how many cues and bytes `held` plus `adding` (cues, bytes) overflow; None if they
        fit."""
        excess_cues = held[0] + adding[0] - self.cues
        excess_bytes = held[1] + adding[1] - self.bytes
        if excess_cues > 0 or excess_bytes > 0:
            return excess_cues, excess_bytes
        return None


@dataclass(frozen=True, slots=True)
class ChannelLoad:
    """What admission needs to know of one channel's queue and limits, in numbers."""

    waiting: int  # cues queued (scheduled ones too)
    pending_bytes: int
    pending_calls: int  # calls its queued cues take (a cue in parts takes several)
    live: bool | None  # False: IVS said it is not broadcasting
    backoff_until: float
    next_allowed: float  # when its own limit and back-off let its next call start
    calls_per_s: float  # its share of the account's calls while busy channels take turns
    expiries: Sequence[float] = ()  # when its queued cues expire (read only if not live)


def cues_per_call(average_item_bytes: float) -> int:
    """How many cues of this average size one payload carries."""
    return max(1, int(MAX_ITEM_BYTES // (average_item_bytes + 1)))


def drain_wait(
    *,
    excess_cues: int,
    excess_bytes: int,
    calls_per_s: float,
    average_item_bytes: float,
) -> float:
    """Seconds until a queue sending `calls_per_s` calls has freed this many cues and bytes."""
    rate = max(calls_per_s, 1e-3) * DRAIN_SAFETY
    by_cues = max(0, excess_cues) / (rate * cues_per_call(average_item_bytes))
    by_bytes = max(0, excess_bytes) / (rate * MAX_METADATA_BYTES * 0.9)
    return max(MIN_RETRY_AFTER_S, by_cues, by_bytes)


def expiry_wait(expiries: Iterable[float], excess_cues: int, now: float) -> float:
    """Seconds until enough cues of a channel that cannot send have expired to make room."""
    ordered = sorted(expiries)
    if not ordered:
        return MIN_RETRY_AFTER_S
    index = min(len(ordered), max(1, excess_cues)) - 1
    return max(MIN_RETRY_AFTER_S, ordered[index] - now)


def channel_wait(
    load: ChannelLoad,
    *,
    excess_cues: int,
    excess_bytes: int,
    channel_rate: int,
    offline_probe: float,
    now: float,
) -> float:
    """Seconds until this channel's queue has room for the excess, from how fast it sends."""
    if load.live is False:
        return max(
            expiry_wait(load.expiries, excess_cues, now),
            min(load.backoff_until - now, offline_probe),
        )
    average = load.pending_bytes / load.waiting if load.waiting else DEFAULT_ITEM_BYTES
    share = load.calls_per_s
    # Cues in parts take a call per part: the calls beyond one per cue, waiting ahead.
    extra_calls = load.pending_calls - load.waiting
    wait = drain_wait(
        excess_cues=excess_cues,
        excess_bytes=excess_bytes,
        calls_per_s=share,
        average_item_bytes=min(average, MAX_ITEM_BYTES),
    ) + extra_calls / (share * DRAIN_SAFETY)
    if share >= channel_rate:
        # At its full rate a channel sends in bursts (a window's worth, then a pause):
        # an average rate would promise room a little before the pause ends.
        calls = extra_calls + max(
            math.ceil(excess_cues / cues_per_call(average)),
            math.ceil(excess_bytes / MAX_METADATA_BYTES),
        )
        first = max(load.next_allowed, now)
        bursts = (calls - 1) // channel_rate
        wait = max(wait, first - now + bursts * WINDOW_S + BURST_SLACK_S)
    return wait + max(0.0, load.backoff_until - now)


def share_of_calls(*, channel_rate: int, account_rate: int, busy_channels: int) -> float:
    """Calls per second one channel gets while its account's busy channels take turns."""
    return min(channel_rate, account_rate / max(1, busy_channels))


def channel_full(arn: str, waiting: int, retry_after: float) -> CueError:
    """The refusal for cues that would overflow channel `arn`, holding `waiting` cues."""
    return CueError(
        "queue_full",
        f"channel {arn} has {waiting} cues waiting, its bound; "
        "slow down and retry after the time given",
        status=429,
        retry_after=retry_after,
        scope="channel",
        channel=arn,
    )


def process_full(message: str, retry_after: float) -> CueError:
    """The refusal for cues that would overflow the process's (or deployment's) bound."""
    return CueError("queue_full", message, status=429, retry_after=retry_after, scope="process")


def connection_full(in_flight: int, retry_after: float) -> CueError:
    """The refusal for a WebSocket connection with `in_flight` cues, its bound."""
    return CueError(
        "queue_full",
        f"this connection has {in_flight} cues in flight, its bound; wait for receipts",
        status=429,
        retry_after=retry_after,
        scope="connection",
    )


def shutting_down() -> CueError:
    """The refusal while the process drains."""
    return CueError(
        "shutting_down",
        "the gateway is shutting down; send to another instance",
        status=503,
        retry_after=SHUTDOWN_RETRY_AFTER_S,
    )
