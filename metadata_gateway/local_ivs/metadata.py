"""PutMetadata's data plane: the payload checks, IVS's two rate quotas and the log of what
viewers would have received. The control plane (`state.py`) says whether a channel is live."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from metadata_gateway.local_ivs.accounts import channel_account, current_caller
from metadata_gateway.local_ivs.errors import IvsError
from metadata_gateway.local_ivs.events import EventLog, Listener, MetadataEvent
from metadata_gateway.local_ivs.limits import PutMetadataLimiter, RateLimits, Verdict
from metadata_gateway.local_ivs.settings import LocalIvsSettings
from metadata_gateway.local_ivs.validation import check_channel_arn, check_metadata

Clock = Callable[[], float]


class MetadataPlane:
    """Accepts or refuses PutMetadata calls, in IVS's order of checks, and records payloads."""

    def __init__(self, settings: LocalIvsSettings, *, clock: Clock, wall_clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._clock_origin, self._wall_origin = clock(), wall_clock()
        self._limiter = PutMetadataLimiter(RateLimits(settings.channel_rate, settings.account_rate))
        self._events = EventLog(settings.max_events)

    def __repr__(self) -> str:
        return f"<MetadataPlane events={len(self._events.events)}>"

    def put(
        self, channel_arn: str, metadata: str, *, require_live: Callable[[str], object]
    ) -> MetadataEvent:
        """PutMetadata: size, channel and live (`require_live` raises), then the per-channel
        and per-account rate quotas."""
        check_channel_arn("channelArn", channel_arn)
        check_metadata(metadata)
        require_live(channel_arn)
        # Each account has its own quota: the channel's, whoever signed (another account's
        # channel was refused before this).
        account = f"{self.settings.region}:{channel_account(channel_arn, self.settings.account_id)}"
        arrival = self._clock()
        verdict = self._limiter.acquire(channel_arn, account, arrival)
        if verdict is Verdict.CHANNEL_LIMIT:
            raise IvsError(
                "ThrottlingException",
                f"Rate exceeded: at most {self.settings.channel_rate} PutMetadata/s per channel",
            )
        if verdict is Verdict.ACCOUNT_LIMIT:
            raise IvsError(
                "ThrottlingException",
                f"Rate exceeded: at most {self.settings.account_rate} PutMetadata/s per account",
            )
        # The event's time is the limiter's own reading, on the wall clock: windows checked on
        # recorded events then agree exactly with the ones the limiter enforced.
        event = MetadataEvent(
            time=self._wall_origin + (arrival - self._clock_origin),
            channel_arn=channel_arn,
            metadata=metadata,
            access_key_id=caller.access_key_id if (caller := current_caller()) else None,
        )
        self._events.append(event)
        return event

    def forget(self, channel_arn: str) -> None:
        """A deleted channel's rate window goes with it."""
        self._limiter.forget(channel_arn)

    @property
    def events(self) -> Sequence[MetadataEvent]:
        """Accepted payloads in arrival order (the most recent `max_events`)."""
        return self._events.events

    def events_of(self, channel_arn: str) -> list[MetadataEvent]:
        """Accepted payloads of one channel in arrival order."""
        return self._events.for_channel(channel_arn)

    def clear_events(self) -> None:
        """Forget every recorded payload."""
        self._events.clear()

    def subscribe(self, channel_arn: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each payload accepted on `channel_arn`; returns the unsubscribe."""
        return self._events.subscribe(channel_arn, listener)
