"""The records the local IVS keeps (channel, stream key, live stream) and their wire shapes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from metadata_gateway.local_ivs.errors import not_found, validation
from metadata_gateway.local_ivs.validation import check_channel_name, check_enum, check_linked_arn

# Enum values and defaults from botocore's IVS model and the IVS API reference.
LATENCY_MODES = ("NORMAL", "LOW")
CHANNEL_TYPES = ("BASIC", "STANDARD", "ADVANCED_SD", "ADVANCED_HD")
ADVANCED_TYPES = frozenset({"ADVANCED_SD", "ADVANCED_HD"})
PRESETS = ("HIGHER_BANDWIDTH_DELIVERY", "CONSTRAINED_BANDWIDTH_DELIVERY")
# IVS gives ADVANCED channels this preset when none is named, and other types the empty string.
DEFAULT_ADVANCED_PRESET = "HIGHER_BANDWIDTH_DELIVERY"
CONTAINER_FORMATS = ("TS", "FRAGMENTED_MP4")
MULTITRACK_POLICIES = ("ALLOW", "REQUIRE")
MULTITRACK_RESOLUTIONS = ("SD", "HD", "FULL_HD")
MULTITRACK_CHANNEL_TYPE = "STANDARD"  # the only type that may enable multitrack input
MULTITRACK_CONTAINER_FORMAT = "FRAGMENTED_MP4"  # multitrack input needs it
STREAM_HEALTHS = ("HEALTHY", "STARVING", "UNKNOWN")
INGEST_DOMAIN = "global-contribute.live-video.net"
SRT_DOMAIN = "srt.live-video.net"
# The linked resources a channel can name, by wire member and ARN resource type.
LINKED_RESOURCE_TYPES = {
    "recordingConfigurationArn": "recording-configuration",
    "playbackRestrictionPolicyArn": "playback-restriction-policy",
    "adConfigurationArn": "ad-configuration",
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Multitrack:
    """A channel's multitrack input configuration (off by default, as IVS answers)."""

    enabled: bool = False
    policy: str = "ALLOW"
    maximum_resolution: str = "FULL_HD"

    def to_json(self) -> dict[str, object]:
        """Return the MultitrackInputConfiguration shape."""
        return {
            "enabled": self.enabled,
            "policy": self.policy,
            "maximumResolution": self.maximum_resolution,
        }


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel's configuration; `position` orders listings by creation."""

    arn: str
    channel_id: str
    position: int
    ingest_prefix: str
    srt_passphrase: str
    name: str = ""
    latency_mode: str = "LOW"
    type: str = "STANDARD"
    authorized: bool = False
    insecure_ingest: bool = False
    preset: str = ""
    recording_configuration_arn: str = ""
    playback_restriction_policy_arn: str = ""
    ad_configuration_arn: str = ""
    container_format: str = "TS"
    multitrack: Multitrack = Multitrack()

    def to_json(self, *, playback_url: str, tags: Mapping[str, str]) -> dict[str, object]:
        """Return the Channel shape."""
        return {
            "arn": self.arn,
            "name": self.name,
            "latencyMode": self.latency_mode,
            "type": self.type,
            "recordingConfigurationArn": self.recording_configuration_arn,
            "ingestEndpoint": f"{self.ingest_prefix}.{INGEST_DOMAIN}",
            "playbackUrl": playback_url,
            "authorized": self.authorized,
            "tags": dict(tags),
            "insecureIngest": self.insecure_ingest,
            "preset": self.preset,
            "srt": {
                "endpoint": f"{self.ingest_prefix}.{SRT_DOMAIN}",
                "passphrase": self.srt_passphrase,
            },
            "playbackRestrictionPolicyArn": self.playback_restriction_policy_arn,
            "multitrackInputConfiguration": self.multitrack.to_json(),
            "containerFormat": self.container_format,
            "adConfigurationArn": self.ad_configuration_arn,
        }

    def links_match(self, filters: Mapping[str, str | None]) -> bool:
        """Whether the channel links every resource the filters (by wire member name) ask for."""
        linked = {
            "recordingConfigurationArn": self.recording_configuration_arn,
            "playbackRestrictionPolicyArn": self.playback_restriction_policy_arn,
            "adConfigurationArn": self.ad_configuration_arn,
        }
        return all(not wanted or linked[member] == wanted for member, wanted in filters.items())

    def to_summary(self, *, tags: Mapping[str, str]) -> dict[str, object]:
        """Return the ChannelSummary shape that ListChannels uses."""
        return {
            "arn": self.arn,
            "name": self.name,
            "latencyMode": self.latency_mode,
            "authorized": self.authorized,
            "recordingConfigurationArn": self.recording_configuration_arn,
            "tags": dict(tags),
            "insecureIngest": self.insecure_ingest,
            "type": self.type,
            "preset": self.preset,
            "playbackRestrictionPolicyArn": self.playback_restriction_policy_arn,
            "adConfigurationArn": self.ad_configuration_arn,
        }


@dataclass(frozen=True, slots=True)
class ChannelChanges:
    """The settings a CreateChannel or UpdateChannel call names; None means "not named"."""

    name: str | None = None
    latency_mode: str | None = None
    channel_type: str | None = None
    authorized: bool | None = None
    insecure_ingest: bool | None = None
    preset: str | None = None
    recording_configuration_arn: str | None = None
    playback_restriction_policy_arn: str | None = None
    ad_configuration_arn: str | None = None
    container_format: str | None = None
    multitrack: Multitrack | None = None

    def linked(self) -> dict[str, str | None]:
        """Return the linked-resource ARNs by wire member name."""
        return {
            "recordingConfigurationArn": self.recording_configuration_arn,
            "playbackRestrictionPolicyArn": self.playback_restriction_policy_arn,
            "adConfigurationArn": self.ad_configuration_arn,
        }

    def refuse_linked(self) -> None:
        """Raise ResourceNotFoundException for a linked resource: this local IVS models none."""
        for member, value in self.linked().items():
            if value:
                raise not_found(f"Resource: {value} not found ({member})")

    def check(self) -> None:
        """Raise ValidationException for any named setting the model does not allow."""
        if self.name is not None:
            check_channel_name("name", self.name)
        if self.latency_mode is not None:
            check_enum("latencyMode", self.latency_mode, LATENCY_MODES)
        if self.channel_type is not None:
            check_enum("type", self.channel_type, CHANNEL_TYPES)
        if self.container_format is not None:
            check_enum("containerFormat", self.container_format, CONTAINER_FORMATS)
        if self.multitrack is not None:
            check_enum(
                "multitrackInputConfiguration.policy", self.multitrack.policy, MULTITRACK_POLICIES
            )
            check_enum(
                "multitrackInputConfiguration.maximumResolution",
                self.multitrack.maximum_resolution,
                MULTITRACK_RESOLUTIONS,
            )
        if self.preset:
            check_enum("preset", self.preset, PRESETS)
        for member, value in self.linked().items():
            if value is not None:
                check_linked_arn(member, value, LINKED_RESOURCE_TYPES[member])

    def apply(self, channel: Channel) -> Channel:
        """Return `channel` with the named settings applied and its preset settled as IVS does."""
        new_type = channel.type if self.channel_type is None else self.channel_type
        changed = dataclasses.replace(
            channel,
            name=_named(self.name, channel.name),
            latency_mode=_named(self.latency_mode, channel.latency_mode),
            type=new_type,
            authorized=_named(self.authorized, channel.authorized),
            insecure_ingest=_named(self.insecure_ingest, channel.insecure_ingest),
            preset=_preset_for(new_type, self.preset, channel.preset),
            container_format=_named(self.container_format, channel.container_format),
            multitrack=_named(self.multitrack, channel.multitrack),
        )
        check_multitrack(changed)
        return changed


def check_multitrack(channel: Channel) -> None:
    """Raise ValidationException unless multitrack input, if on, is on a channel that allows it:
    the model's MultitrackInputConfiguration documentation says STANDARD and FRAGMENTED_MP4."""
    if not channel.multitrack.enabled:
        return
    if channel.type != MULTITRACK_CHANNEL_TYPE:
        raise validation(
            "multitrackInputConfiguration.enabled can be true only on STANDARD channels, "
            f"not {channel.type}"
        )
    if channel.container_format != MULTITRACK_CONTAINER_FORMAT:
        raise validation(
            "multitrackInputConfiguration.enabled requires containerFormat FRAGMENTED_MP4, "
            f"not {channel.container_format}"
        )


def _named(value: T | None, current: T) -> T:
    return current if value is None else value


def _preset_for(channel_type: str, requested: str | None, current: str) -> str:
    """Return the preset a channel of `channel_type` ends up with, as IVS assigns them."""
    if channel_type not in ADVANCED_TYPES:
        if requested:
            raise validation(
                f"preset is only allowed for ADVANCED channel types, not {channel_type}"
            )
        return ""
    if requested:
        return requested
    return current or DEFAULT_ADVANCED_PRESET


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A channel's stream key; `value` is the secret an encoder streams with."""

    arn: str
    value: str
    channel_arn: str
    position: int

    def to_json(self, *, tags: Mapping[str, str]) -> dict[str, object]:
        """Return the StreamKey shape, secret value included."""
        return {
            "arn": self.arn,
            "value": self.value,
            "channelArn": self.channel_arn,
            "tags": dict(tags),
        }

    def to_summary(self, *, tags: Mapping[str, str]) -> dict[str, object]:
        """Return the StreamKeySummary shape (no secret) that ListStreamKeys uses."""
        return {"arn": self.arn, "channelArn": self.channel_arn, "tags": dict(tags)}


def iso_timestamp(unix_seconds: float) -> str:
    """Return `unix_seconds` as ISO 8601 UTC with milliseconds, as the iso8601 shapes expect."""
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LiveStream:
    """A channel's live stream; `start_time` is wall-clock Unix seconds."""

    channel_arn: str
    stream_id: str
    start_time: float
    position: int
    health: str = "HEALTHY"
    viewer_count: int = 0

    def to_json(self, *, playback_url: str) -> dict[str, object]:
        """Return the Stream shape that GetStream uses."""
        return {
            "channelArn": self.channel_arn,
            "streamId": self.stream_id,
            "playbackUrl": playback_url,
            "startTime": iso_timestamp(self.start_time),
            "state": "LIVE",
            "health": self.health,
            "viewerCount": self.viewer_count,
        }

    def to_summary(self) -> dict[str, object]:
        """Return the StreamSummary shape that ListStreams uses."""
        return {
            "channelArn": self.channel_arn,
            "streamId": self.stream_id,
            "state": "LIVE",
            "health": self.health,
            "viewerCount": self.viewer_count,
            "startTime": iso_timestamp(self.start_time),
        }
