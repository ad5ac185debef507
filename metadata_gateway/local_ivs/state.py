"""The local IVS's account: channels, stream keys, live streams and tags (the control plane);
PutMetadata's data plane is `metadata.py`."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from metadata_gateway.local_ivs.accounts import acting_account, owns, require_owner
from metadata_gateway.local_ivs.errors import IvsError, batch_error, not_found
from metadata_gateway.local_ivs.events import Listener, MetadataEvent
from metadata_gateway.local_ivs.faults import FaultInjector
from metadata_gateway.local_ivs.ids import IdFactory
from metadata_gateway.local_ivs.metadata import MetadataPlane
from metadata_gateway.local_ivs.pagination import max_results_of, paginate, position
from metadata_gateway.local_ivs.resources import (
    LINKED_RESOURCE_TYPES,
    STREAM_HEALTHS,
    Channel,
    ChannelChanges,
    LiveStream,
)
from metadata_gateway.local_ivs.sessions import SessionBook
from metadata_gateway.local_ivs.settings import LocalIvsSettings
from metadata_gateway.local_ivs.stats import OperationStats
from metadata_gateway.local_ivs.stream_keys import StreamKeys
from metadata_gateway.local_ivs.streams import LiveStreams, StreamListener
from metadata_gateway.local_ivs.tags import TagTable
from metadata_gateway.local_ivs.validation import (
    check_arn_list,
    check_channel_arn,
    check_channel_name,
    check_enum,
    check_linked_arn,
    check_tags,
)

Clock = Callable[[], float]
JsonObject = dict[str, Any]  # a JSON object as the wire carries it

# maxResults bounds are the model's (MaxChannelResults, ...); defaults are the IVS API reference's.
MAX_CHANNEL_RESULTS = 100
DEFAULT_CHANNEL_RESULTS = 100
MAX_STREAM_KEY_RESULTS = 50
DEFAULT_STREAM_KEY_RESULTS = 1
MAX_STREAM_RESULTS = 100
DEFAULT_STREAM_RESULTS = 100


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
        self._wall_clock = wall_clock

        self.base_url = base_url or self.settings.default_url
        self._positions = itertools.count()
        self._channels: dict[str, Channel] = {}
        self.streams = LiveStreams(
            new_stream_id=self._ids.stream_id, wall_clock=wall_clock, positions=self._positions
        )
        self.tags = TagTable()
        self._tags = self.tags.by_arn  # of channels and stream keys
        self.stream_keys = StreamKeys(
            self.settings, ids=self._ids, positions=self._positions, tags=self._tags
        )
        self.metadata = MetadataPlane(self.settings, clock=clock, wall_clock=wall_clock)
        self._stats = OperationStats()
        self.sessions = SessionBook()  # GetStreamSession, ListStreamSessions and their events

    def __repr__(self) -> str:
        return (
            f"<LocalIvsState {self.settings.region}/{self.settings.account_id}"
            f" channels={len(self._channels)} live={len(self.streams)}"
            f" events={len(self.metadata.events)}>"
        )

    # -- channels ---------------------------------------------------------------------------

    def create_channel(
        self,
        changes: ChannelChanges | None = None,
        *,
        name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> JsonObject:
        """CreateChannel: a channel with IVS's defaults, the settings `changes` names and its
        stream key, in wire shape; `name` is a shorthand for `ChannelChanges(name=...)`."""
        changes = changes or ChannelChanges()
        if name is not None:
            changes = dataclasses.replace(changes, name=name)
        changes.check()
        if tags is not None:
            check_tags("tags", tags)
        changes.refuse_linked()
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
        key = self.stream_keys.new(channel.arn)
        return {"channel": self._channel_json(channel), "streamKey": self.stream_keys.to_json(key)}

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
        errors = [batch_error(arn) for arn in arns if arn not in self._channels]
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
        limit = max_results_of(max_results, DEFAULT_CHANNEL_RESULTS, MAX_CHANNEL_RESULTS)
        filters = [filter_by_name, *linked_filters.values()]
        # IVS documents these filters as mutually exclusive and answers 409 to a combination.
        if sum(1 for value in filters if value) > 1:
            raise IvsError("ConflictException", "Only one filter may be used at a time")
        matching = [
            channel
            for channel in self._channels.values()
            if (not filter_by_name or filter_by_name in channel.name)
            and channel.links_match(linked_filters)
            and owns(channel.arn, self.settings.account_id)
        ]
        page, token = paginate(
            matching,
            position_of=position,
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

    def update_channel(self, arn: str, changes: ChannelChanges) -> JsonObject:
        """UpdateChannel: change the settings `changes` names; a live channel cannot be updated
        (409)."""
        check_channel_arn("arn", arn)
        changes.check()
        channel = self._channel("arn", arn)
        if arn in self.streams:
            raise IvsError("ConflictException", "Cannot update a channel while it is live")
        changes.refuse_linked()
        updated = changes.apply(channel)
        self._channels[arn] = updated
        return {"channel": self._channel_json(updated)}

    def delete_channel(self, arn: str) -> None:
        """DeleteChannel: also deletes its stream keys; a live channel cannot be deleted (409)."""
        self._channel("arn", arn)
        if arn in self.streams:
            raise IvsError(
                "ConflictException", "Cannot delete a live channel; stop its stream first"
            )
        for key in self.stream_keys.of_channel(arn):
            self.stream_keys.delete(key.arn)
        del self._channels[arn]
        del self._tags[arn]
        self.metadata.forget(arn)
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
        return self.stream_keys.create(channel_arn, tags)

    def get_stream_key(self, arn: str) -> JsonObject:
        """GetStreamKey, secret value included."""
        return {"streamKey": self.stream_keys.to_json(self.stream_keys.get("arn", arn))}

    def batch_get_stream_key(self, arns: list[str]) -> JsonObject:
        """BatchGetStreamKey: known keys, and a ResourceNotFoundException entry per unknown ARN."""
        return self.stream_keys.batch_get(arns)

    def list_stream_keys(
        self, channel_arn: str, *, next_token: str | None = None, max_results: int | None = None
    ) -> JsonObject:
        """ListStreamKeys of one channel, without their secret values."""
        check_channel_arn("channelArn", channel_arn)
        limit = max_results_of(max_results, DEFAULT_STREAM_KEY_RESULTS, MAX_STREAM_KEY_RESULTS)
        self._channel("channelArn", channel_arn)
        return self.stream_keys.page(channel_arn, next_token=next_token, max_results=limit)

    def delete_stream_key(self, arn: str) -> None:
        """DeleteStreamKey."""
        self.stream_keys.get("arn", arn)
        self.stream_keys.delete(arn)

    # -- streams ----------------------------------------------------------------------------

    def start_stream(self, channel_arn: str, *, health: str = "HEALTHY") -> JsonObject:
        """Simulate an encoder going live on the channel (or set the health of its live stream)."""
        channel = self._channel("channelArn", channel_arn)
        check_enum("health", health, STREAM_HEALTHS)
        stream = self.streams.start(
            channel_arn,
            health,
            on_start=lambda started: self.sessions.started(
                channel_arn,
                started.stream_id,
                started.start_time,
                started.position,
                self._channel_json(channel),
            ),
        )
        return {"stream": stream.to_json(playback_url=self.playback_url(channel))}

    def get_stream(self, channel_arn: str) -> JsonObject:
        """GetStream: ChannelNotBroadcasting unless the channel is live."""
        channel = self._channel("channelArn", channel_arn)
        stream = self.streams.live(channel_arn)
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
        limit = max_results_of(max_results, DEFAULT_STREAM_RESULTS, MAX_STREAM_RESULTS)
        account = self.settings.account_id
        return self.streams.page(
            health=health,
            visible=lambda arn: owns(arn, account),
            next_token=next_token,
            max_results=limit,
        )

    def stop_stream(self, channel_arn: str) -> JsonObject:
        """StopStream: ends the live stream; ChannelNotBroadcasting if there is none."""
        self._channel("channelArn", channel_arn)
        self.streams.stop(
            channel_arn, on_stop=lambda: self.sessions.ended(channel_arn, self._wall_clock())
        )
        return {}

    def watch_streams(self, listener: StreamListener) -> Callable[[], None]:
        """Call `listener(arn, live)` as streams start and stop (now for those already live)."""
        return self.streams.watch(listener)

    # -- metadata ---------------------------------------------------------------------------

    def put_metadata(self, channel_arn: str, metadata: str) -> MetadataEvent:
        """PutMetadata (see `metadata.py`): size, channel, live, then both rate quotas."""
        return self.metadata.put(channel_arn, metadata, require_live=self._require_live)

    def _require_live(self, channel_arn: str) -> None:
        self._channel("channelArn", channel_arn)
        self._live(channel_arn)

    @property
    def events(self) -> Sequence[MetadataEvent]:
        """Accepted PutMetadata payloads in arrival order (the most recent `max_events`)."""
        return self.metadata.events

    def events_of(self, channel_arn: str) -> list[MetadataEvent]:
        """Accepted payloads of one channel in arrival order."""
        return self.metadata.events_of(channel_arn)

    def clear_events(self) -> None:
        """Forget every recorded payload."""
        self.metadata.clear_events()

    def subscribe(self, channel_arn: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each payload accepted on `channel_arn`; returns the unsubscribe."""
        return self.metadata.subscribe(channel_arn, listener)

    # -- tags -------------------------------------------------------------------------------

    def tag_resource(self, resource_arn: str, tags: dict[str, str]) -> JsonObject:
        """TagResource: add or replace tags, at most 50 per resource."""
        self.tags.tag(resource_arn, tags)
        return {}

    def untag_resource(self, resource_arn: str, tag_keys: list[str]) -> JsonObject:
        """UntagResource: remove the named tags (absent ones are ignored)."""
        self.tags.untag(resource_arn, tag_keys)
        return {}

    def list_tags_for_resource(self, resource_arn: str) -> JsonObject:
        """ListTagsForResource."""
        return {"tags": dict(self.tags.of(resource_arn))}

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

    def _live(self, channel_arn: str) -> LiveStream:
        return self.streams.live(channel_arn)

    def _channel_json(self, channel: Channel) -> JsonObject:
        return channel.to_json(
            playback_url=self.playback_url(channel), tags=self._tags[channel.arn]
        )
