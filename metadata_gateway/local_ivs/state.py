"""The local IVS's account: channels, stream keys, live streams, tags, and the PutMetadata path."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from metadata_gateway.local_ivs.accounts import (
    acting_account,
    channel_account,
    current_caller,
    owns,
    require_owner,
)
from metadata_gateway.local_ivs.errors import IvsError, not_found, validation
from metadata_gateway.local_ivs.events import EventLog, Listener, MetadataEvent
from metadata_gateway.local_ivs.faults import FaultInjector
from metadata_gateway.local_ivs.ids import IdFactory
from metadata_gateway.local_ivs.limits import PutMetadataLimiter, RateLimits, Verdict
from metadata_gateway.local_ivs.pagination import paginate
from metadata_gateway.local_ivs.resources import (
    LINKED_RESOURCE_TYPES,
    STREAM_HEALTHS,
    Channel,
    ChannelChanges,
    LiveStream,
    Multitrack,
    StreamKey,
)
from metadata_gateway.local_ivs.sessions import SessionBook
from metadata_gateway.local_ivs.settings import LocalIvsSettings
from metadata_gateway.local_ivs.stats import OperationStats
from metadata_gateway.local_ivs.validation import (
    MAX_TAGS,
    check_arn_list,
    check_channel_arn,
    check_channel_name,
    check_enum,
    check_int_range,
    check_linked_arn,
    check_metadata,
    check_resource_arn,
    check_stream_key_arn,
    check_tag_key,
    check_tags,
    invalid,
)

Clock = Callable[[], float]
StreamListener = Callable[[str, bool], None]  # (channel ARN, live): a stream started or stopped
JsonObject = dict[str, Any]  # a JSON object as the wire carries it

# maxResults bounds are the model's (MaxChannelResults, ...); defaults are the IVS API reference's.
MAX_CHANNEL_RESULTS = 100
DEFAULT_CHANNEL_RESULTS = 100
MAX_STREAM_KEY_RESULTS = 50
DEFAULT_STREAM_KEY_RESULTS = 1
MAX_STREAM_RESULTS = 100
DEFAULT_STREAM_RESULTS = 100
MAX_STREAM_KEYS_PER_CHANNEL = 1  # IVS quota "Stream keys per channel", not adjustable


class LocalIvsState:
    """One IVS account in one region, in memory; methods mirror IVS operations, raising IvsError."""

    def __init__(
        self,
        settings: LocalIvsSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
        base_url: str | None = None,
    ) -> None:
        self.settings = settings or LocalIvsSettings()
        # Ids and fault dice get separate generators, so turning a fault on does not change ids.
        rng = rng or random.Random()
        self.faults = FaultInjector(random.Random(rng.getrandbits(64)))
        self._ids = IdFactory(random.Random(rng.getrandbits(64)))
        self._clock = clock
        self._wall_clock = wall_clock
        self._clock_origin, self._wall_origin = clock(), wall_clock()

        self.base_url = base_url or self.settings.default_url
        self._positions = itertools.count()
        self._channels: dict[str, Channel] = {}
        self._stream_keys: dict[str, StreamKey] = {}
        self._streams: dict[str, LiveStream] = {}
        self._tags: dict[str, dict[str, str]] = {}
        self._limiter = PutMetadataLimiter(
            RateLimits(self.settings.channel_rate, self.settings.account_rate)
        )
        self._events = EventLog(self.settings.max_events)
        self._stats = OperationStats()
        self._stream_listeners: list[StreamListener] = []
        self.sessions = SessionBook()  # GetStreamSession, ListStreamSessions and their events

    def __repr__(self) -> str:
        return (
            f"<LocalIvsState {self.settings.region}/{self.settings.account_id}"
            f" channels={len(self._channels)} live={len(self._streams)}"
            f" events={len(self._events.events)}>"
        )

    # -- channels ---------------------------------------------------------------------------

    def create_channel(
        self,
        *,
        name: str | None = None,
        latency_mode: str | None = None,
        channel_type: str | None = None,
        authorized: bool | None = None,
        insecure_ingest: bool | None = None,
        preset: str | None = None,
        recording_configuration_arn: str | None = None,
        playback_restriction_policy_arn: str | None = None,
        ad_configuration_arn: str | None = None,
        container_format: str | None = None,
        multitrack: Multitrack | None = None,
        tags: dict[str, str] | None = None,
    ) -> JsonObject:
        """CreateChannel: a channel with IVS's defaults and its stream key, in wire shape."""
        changes = ChannelChanges(
            name=name,
            latency_mode=latency_mode,
            channel_type=channel_type,
            authorized=authorized,
            insecure_ingest=insecure_ingest,
            preset=preset,
            recording_configuration_arn=recording_configuration_arn,
            playback_restriction_policy_arn=playback_restriction_policy_arn,
            ad_configuration_arn=ad_configuration_arn,
            container_format=container_format,
            multitrack=multitrack,
        )
        changes.check()
        if tags is not None:
            check_tags("tags", tags)
        _refuse_linked(changes)
        if len(self._channels) >= self.settings.max_channels:
            raise IvsError(
                "ServiceQuotaExceededException",
                f"Exceeded the quota of {self.settings.max_channels} channels in this region",
            )
        channel_id = self._ids.resource_id()
        while self._channel_arn(channel_id) in self._channels:
            channel_id = self._ids.resource_id()
        blank = Channel(
            arn=self._channel_arn(channel_id),
            channel_id=channel_id,
            position=next(self._positions),
            ingest_prefix=self._ids.ingest_host_prefix(),
            srt_passphrase=self._ids.srt_passphrase(),
        )
        channel = changes.apply(blank)
        self._channels[channel.arn] = channel
        self._tags[channel.arn] = dict(tags or {})
        key = self._new_stream_key(channel.arn)
        return {"channel": self._channel_json(channel), "streamKey": self._key_json(key)}

    def get_channel(self, arn: str) -> JsonObject:
        """GetChannel."""
        return {"channel": self._channel_json(self._channel("arn", arn))}

    def batch_get_channel(self, arns: list[str]) -> JsonObject:
        """BatchGetChannel: known channels, and a ResourceNotFoundException per unknown ARN."""
        check_arn_list("arns", arns, check_channel_arn)
        for arn in arns:
            require_owner(arn)
        channels = [
            self._channel_json(self._channels[arn]) for arn in arns if arn in self._channels
        ]
        errors = [_batch_error(arn) for arn in arns if arn not in self._channels]
        return {"channels": channels, "errors": errors}

    def list_channels(
        self,
        *,
        filter_by_name: str | None = None,
        filter_by_recording_configuration_arn: str | None = None,
        filter_by_playback_restriction_policy_arn: str | None = None,
        filter_by_ad_configuration_arn: str | None = None,
        next_token: str | None = None,
        max_results: int | None = None,
    ) -> JsonObject:
        """ListChannels: channels in creation order; `filter_by_name` keeps names containing it."""
        linked_filters = {
            "recordingConfigurationArn": filter_by_recording_configuration_arn,
            "playbackRestrictionPolicyArn": filter_by_playback_restriction_policy_arn,
            "adConfigurationArn": filter_by_ad_configuration_arn,
        }
        if filter_by_name is not None:
            check_channel_name("filterByName", filter_by_name)
        for member, value in linked_filters.items():
            if value is not None:
                check_linked_arn(
                    f"filterBy{member[0].upper()}{member[1:]}", value, LINKED_RESOURCE_TYPES[member]
                )
        limit = _max_results(max_results, DEFAULT_CHANNEL_RESULTS, MAX_CHANNEL_RESULTS)
        filters = [filter_by_name, *linked_filters.values()]
        # IVS documents these filters as mutually exclusive and answers 409 to a combination.
        if sum(1 for value in filters if value) > 1:
            raise IvsError("ConflictException", "Only one filter may be used at a time")
        matching = [
            channel
            for channel in self._channels.values()
            if (not filter_by_name or filter_by_name in channel.name)
            and _links_match(channel, linked_filters)
            and owns(channel.arn, self.settings.account_id)
        ]
        page, token = paginate(
            matching,
            position_of=_position,
            listing="channels",
            next_token=next_token,
            max_results=limit,
        )
        answer: JsonObject = {
            "channels": [channel.to_summary(tags=self._tags[channel.arn]) for channel in page]
        }
        if token:
            answer["nextToken"] = token
        return answer

    def update_channel(
        self,
        arn: str,
        *,
        name: str | None = None,
        latency_mode: str | None = None,
        channel_type: str | None = None,
        authorized: bool | None = None,
        insecure_ingest: bool | None = None,
        preset: str | None = None,
        recording_configuration_arn: str | None = None,
        playback_restriction_policy_arn: str | None = None,
        ad_configuration_arn: str | None = None,
        container_format: str | None = None,
        multitrack: Multitrack | None = None,
    ) -> JsonObject:
        """UpdateChannel: change the named settings; a live channel cannot be updated (409)."""
        changes = ChannelChanges(
            name=name,
            latency_mode=latency_mode,
            channel_type=channel_type,
            authorized=authorized,
            insecure_ingest=insecure_ingest,
            preset=preset,
            recording_configuration_arn=recording_configuration_arn,
            playback_restriction_policy_arn=playback_restriction_policy_arn,
            ad_configuration_arn=ad_configuration_arn,
            container_format=container_format,
            multitrack=multitrack,
        )
        check_channel_arn("arn", arn)
        changes.check()
        channel = self._channel("arn", arn)
        if arn in self._streams:
            raise IvsError("ConflictException", "Cannot update a channel while it is live")
        _refuse_linked(changes)
        updated = changes.apply(channel)
        self._channels[arn] = updated
        return {"channel": self._channel_json(updated)}

    def delete_channel(self, arn: str) -> None:
        """DeleteChannel: also deletes its stream keys; a live channel cannot be deleted (409)."""
        self._channel("arn", arn)
        if arn in self._streams:
            raise IvsError(
                "ConflictException", "Cannot delete a live channel; stop its stream first"
            )
        for key in [key for key in self._stream_keys.values() if key.channel_arn == arn]:
            del self._stream_keys[key.arn]
            del self._tags[key.arn]
        del self._channels[arn]
        del self._tags[arn]
        self._limiter.forget(arn)
        self.sessions.forget(arn)

    def has_channel(self, arn: str) -> bool:
        """Return whether `arn` names an existing channel."""
        return arn in self._channels

    # -- stream keys ------------------------------------------------------------------------

    def create_stream_key(
        self, channel_arn: str, *, tags: dict[str, str] | None = None
    ) -> JsonObject:
        """CreateStreamKey: IVS allows one stream key per channel, so a second is a quota error."""
        check_channel_arn("channelArn", channel_arn)
        if tags is not None:
            check_tags("tags", tags)
        self._channel("channelArn", channel_arn)
        if len(self._keys_of(channel_arn)) >= MAX_STREAM_KEYS_PER_CHANNEL:
            raise IvsError(
                "ServiceQuotaExceededException",
                f"Exceeded the quota of {MAX_STREAM_KEYS_PER_CHANNEL} stream key per channel",
            )
        key = self._new_stream_key(channel_arn, tags)
        return {"streamKey": self._key_json(key)}

    def get_stream_key(self, arn: str) -> JsonObject:
        """GetStreamKey, secret value included."""
        return {"streamKey": self._key_json(self._stream_key("arn", arn))}

    def batch_get_stream_key(self, arns: list[str]) -> JsonObject:
        """BatchGetStreamKey: known keys, and a ResourceNotFoundException entry per unknown ARN."""
        check_arn_list("arns", arns, check_stream_key_arn)
        for arn in arns:
            require_owner(arn)
        keys = [self._key_json(self._stream_keys[arn]) for arn in arns if arn in self._stream_keys]
        errors = [_batch_error(arn) for arn in arns if arn not in self._stream_keys]
        return {"streamKeys": keys, "errors": errors}

    def list_stream_keys(
        self, channel_arn: str, *, next_token: str | None = None, max_results: int | None = None
    ) -> JsonObject:
        """ListStreamKeys of one channel, without their secret values."""
        check_channel_arn("channelArn", channel_arn)
        limit = _max_results(max_results, DEFAULT_STREAM_KEY_RESULTS, MAX_STREAM_KEY_RESULTS)
        self._channel("channelArn", channel_arn)
        page, token = paginate(
            self._keys_of(channel_arn),
            position_of=_position,
            listing=f"stream-keys:{channel_arn.rsplit('/', 1)[-1]}",
            next_token=next_token,
            max_results=limit,
        )
        answer: JsonObject = {
            "streamKeys": [key.to_summary(tags=self._tags[key.arn]) for key in page]
        }
        if token:
            answer["nextToken"] = token
        return answer

    def delete_stream_key(self, arn: str) -> None:
        """DeleteStreamKey."""
        self._stream_key("arn", arn)
        del self._stream_keys[arn]
        del self._tags[arn]

    # -- streams ----------------------------------------------------------------------------

    def start_stream(self, channel_arn: str, *, health: str = "HEALTHY") -> JsonObject:
        """Simulate an encoder going live on the channel (or set the health of its live stream)."""
        channel = self._channel("channelArn", channel_arn)
        check_enum("health", health, STREAM_HEALTHS)
        stream = self._streams.get(channel_arn)
        if stream is None:
            stream = LiveStream(
                channel_arn=channel_arn,
                stream_id=self._ids.stream_id(),
                start_time=self._wall_clock(),
                position=next(self._positions),
                health=health,
            )
            started = True
        else:
            stream = dataclasses.replace(stream, health=health)
            started = False
        self._streams[channel_arn] = stream
        if started:
            self.sessions.started(
                channel_arn,
                stream.stream_id,
                stream.start_time,
                stream.position,
                self._channel_json(channel),
            )
            self._tell_streams(channel_arn, live=True)
        return {"stream": stream.to_json(playback_url=self.playback_url(channel))}

    def get_stream(self, channel_arn: str) -> JsonObject:
        """GetStream: ChannelNotBroadcasting unless the channel is live."""
        channel = self._channel("channelArn", channel_arn)
        stream = self._live(channel_arn)
        return {"stream": stream.to_json(playback_url=self.playback_url(channel))}

    def list_streams(
        self,
        *,
        health: str | None = None,
        next_token: str | None = None,
        max_results: int | None = None,
    ) -> JsonObject:
        """ListStreams: the live streams, in the order they started, optionally of one health."""
        if health is not None:
            check_enum("filterBy.health", health, STREAM_HEALTHS)
        limit = _max_results(max_results, DEFAULT_STREAM_RESULTS, MAX_STREAM_RESULTS)
        streams = sorted(self._streams.values(), key=_position)
        matching = [
            stream
            for stream in streams
            if (health is None or stream.health == health)
            and owns(stream.channel_arn, self.settings.account_id)
        ]
        page, token = paginate(
            matching,
            position_of=_position,
            listing="streams",
            next_token=next_token,
            max_results=limit,
        )
        answer: JsonObject = {"streams": [stream.to_summary() for stream in page]}
        if token:
            answer["nextToken"] = token
        return answer

    def stop_stream(self, channel_arn: str) -> JsonObject:
        """StopStream: ends the live stream; ChannelNotBroadcasting if there is none."""
        self._channel("channelArn", channel_arn)
        self._live(channel_arn)
        del self._streams[channel_arn]
        self.sessions.ended(channel_arn, self._wall_clock())
        self._tell_streams(channel_arn, live=False)
        return {}

    def watch_streams(self, listener: StreamListener) -> Callable[[], None]:
        """Call `listener(arn, live)` as streams start and stop (now for those already live)."""
        self._stream_listeners.append(listener)
        for channel_arn in list(self._streams):
            listener(channel_arn, True)

        def unwatch() -> None:
            if listener in self._stream_listeners:
                self._stream_listeners.remove(listener)

        return unwatch

    def _tell_streams(self, channel_arn: str, *, live: bool) -> None:
        for listener in tuple(self._stream_listeners):
            listener(channel_arn, live)

    # -- metadata ---------------------------------------------------------------------------

    def put_metadata(self, channel_arn: str, metadata: str) -> MetadataEvent:
        """PutMetadata: size, channel, live, then the per-channel and per-account rate quotas."""
        check_channel_arn("channelArn", channel_arn)
        check_metadata(metadata)
        self._channel("channelArn", channel_arn)
        self._live(channel_arn)
        # Every channel here belongs to the one account and region this state plays.
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

    @property
    def events(self) -> Sequence[MetadataEvent]:
        """Accepted PutMetadata payloads in arrival order (the most recent `max_events`)."""
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

    # -- tags -------------------------------------------------------------------------------

    def tag_resource(self, resource_arn: str, tags: dict[str, str]) -> JsonObject:
        """TagResource: add or replace tags, at most 50 per resource."""
        check_resource_arn("resourceArn", resource_arn)
        check_tags("tags", tags)
        current = self._tags_of(resource_arn)
        merged = {**current, **tags}
        if len(merged) > MAX_TAGS:
            raise validation(
                f"A resource can have at most {MAX_TAGS} tags; this would make {len(merged)}"
            )
        current.update(tags)
        return {}

    def untag_resource(self, resource_arn: str, tag_keys: list[str]) -> JsonObject:
        """UntagResource: remove the named tags (absent ones are ignored)."""
        check_resource_arn("resourceArn", resource_arn)
        if len(tag_keys) > MAX_TAGS:
            raise invalid("tagKeys", None, f"have at most {MAX_TAGS} entries")
        for key in tag_keys:
            check_tag_key("tagKeys", key)
        current = self._tags_of(resource_arn)
        for key in tag_keys:
            current.pop(key, None)
        return {}

    def list_tags_for_resource(self, resource_arn: str) -> JsonObject:
        """ListTagsForResource."""
        return {"tags": dict(self._tags_of(resource_arn))}

    # -- stats ------------------------------------------------------------------------------

    def count_outcome(self, operation: str, outcome: str) -> None:
        """Count one answer of `operation`: `accepted` or the error name returned."""
        self._stats.count(operation, outcome)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-operation answer counts, as `GET /_local/stats` shows them."""
        return self._stats.snapshot()

    def clear_stats(self) -> None:
        """Reset the answer counts."""
        self._stats.clear()

    # -- helpers ----------------------------------------------------------------------------

    def playback_url(self, channel: Channel) -> str:
        """The channel's playback URL, served by this local IVS itself when playback is on."""
        return f"{self.base_url}/_local/playback/{channel.channel_id}.m3u8"

    def _channel_arn(self, channel_id: str) -> str:
        account = acting_account(self.settings.account_id)
        return f"arn:aws:ivs:{self.settings.region}:{account}:channel/{channel_id}"

    def _channel(self, field: str, arn: str) -> Channel:
        check_channel_arn(field, arn)
        require_owner(arn)
        channel = self._channels.get(arn)
        if channel is None:
            raise not_found(f"Resource: {arn} not found")
        return channel

    def _stream_key(self, field: str, arn: str) -> StreamKey:
        check_stream_key_arn(field, arn)
        require_owner(arn)
        key = self._stream_keys.get(arn)
        if key is None:
            raise not_found(f"Resource: {arn} not found")
        return key

    def _live(self, channel_arn: str) -> LiveStream:
        stream = self._streams.get(channel_arn)
        if stream is None:
            raise IvsError("ChannelNotBroadcasting", f"Channel {channel_arn} is not broadcasting")
        return stream

    def _tags_of(self, resource_arn: str) -> dict[str, str]:
        check_resource_arn("resourceArn", resource_arn)
        require_owner(resource_arn)
        tags = self._tags.get(resource_arn)
        if tags is None:
            raise not_found(f"Resource: {resource_arn} not found")
        return tags

    def _keys_of(self, channel_arn: str) -> list[StreamKey]:
        return [key for key in self._stream_keys.values() if key.channel_arn == channel_arn]

    def _new_stream_key(self, channel_arn: str, tags: dict[str, str] | None = None) -> StreamKey:
        account = channel_account(channel_arn, self.settings.account_id)
        prefix = f"arn:aws:ivs:{self.settings.region}:{account}:stream-key/"
        arn = prefix + self._ids.resource_id()
        while arn in self._stream_keys:
            arn = prefix + self._ids.resource_id()
        key = StreamKey(
            arn=arn,
            value=self._ids.stream_key_value(self.settings.region),
            channel_arn=channel_arn,
            position=next(self._positions),
        )
        self._stream_keys[arn] = key
        self._tags[arn] = dict(tags or {})
        return key

    def _channel_json(self, channel: Channel) -> JsonObject:
        return channel.to_json(
            playback_url=self.playback_url(channel), tags=self._tags[channel.arn]
        )

    def _key_json(self, key: StreamKey) -> JsonObject:
        return key.to_json(tags=self._tags[key.arn])


def _refuse_linked(changes: ChannelChanges) -> None:
    """Raise ResourceNotFoundException for a linked resource: this local IVS models none."""
    for member, value in changes.linked().items():
        if value:
            raise not_found(f"Resource: {value} not found ({member})")


def _links_match(channel: Channel, filters: dict[str, str | None]) -> bool:
    linked = {
        "recordingConfigurationArn": channel.recording_configuration_arn,
        "playbackRestrictionPolicyArn": channel.playback_restriction_policy_arn,
        "adConfigurationArn": channel.ad_configuration_arn,
    }
    return all(not wanted or linked[member] == wanted for member, wanted in filters.items())


def _max_results(value: int | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    check_int_range("maxResults", value, 1, maximum)
    return value


def _position(item: Channel | StreamKey | LiveStream) -> int:
    return item.position


def _batch_error(arn: str) -> JsonObject:
    return {
        "arn": arn,
        "code": "ResourceNotFoundException",
        "message": f"Resource: {arn} not found",
    }
