"""One channel as the scheduler sees it: its queue, its own rate limit, and what IVS last said."""

from __future__ import annotations

from enum import Enum

from metadata_gateway.core.arn import ChannelArn, parse_channel_arn
from metadata_gateway.core.channel_queue import ChannelQueue
from metadata_gateway.core.pending import Batch, Encoding
from metadata_gateway.core.rate_limit import SlidingWindowLimiter


class Slot(Enum):
    """Where a channel stands in its budget's scheduler."""

    IDLE = "idle"  # nothing to send, or not yet looked at
    READY = "ready"  # in the round-robin line for the account budget
    WAITING = "waiting"  # its own limit or a back-off holds it until `wake_at`
    IN_FLIGHT = "in_flight"  # one call at a time per channel keeps its cues in order


class Channel:
    """Scheduling state and counters of one IVS channel."""

    __slots__ = (
        "arn",
        "backoff_until",
        "delivered_cues",
        "encoding",
        "expiry_at",
        "failures",
        "in_flight",
        "last_error",
        "limiter",
        "live",
        "queue",
        "sent_requests",
        "slot",
        "wake_at",
    )

    def __init__(
        self, arn: ChannelArn, *, rate: int, margin: float, encoding: Encoding = Encoding.JSON
    ) -> None:
        self.arn = arn
        self.encoding = encoding
        self.queue = ChannelQueue()
        self.limiter = SlidingWindowLimiter(rate, margin=margin)
        self.slot = Slot.IDLE
        self.wake_at: float | None = None
        self.expiry_at: float | None = None
        self.backoff_until = 0.0
        self.failures = 0  # consecutive retryable failures, for exponential back-off
        self.in_flight: Batch | None = None  # the call on its way, one at a time
        self.live: bool | None = None  # None until IVS has answered a call
        self.sent_requests = 0
        self.delivered_cues = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"<Channel {self.arn.channel_id} {self.slot.value} pending={len(self.queue)} "
            f"live={self.live} sent={self.sent_requests}>"
        )

    @classmethod
    def blank(cls, arn: str) -> Channel:
        """A channel that has never had a cue, for showing; `arn` must be a valid ARN."""
        parsed = parse_channel_arn(arn)
        if parsed is None:
            raise ValueError(f"not a channel ARN: {arn!r}")
        return cls(parsed, rate=1, margin=0.0)

    def next_allowed(self, now: float) -> float:
        """The earliest time this channel may start its next call."""
        return max(self.limiter.next_allowed(now), self.backoff_until)
