"""One channel's live HLS playlist: the shared encoded segments, each led by its own metadata."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from metadata_gateway.local_ivs.playback.id3 import empty_tag, txxx_tag
from metadata_gateway.local_ivs.playback.splitter import EncodedSegment
from metadata_gateway.local_ivs.playback.ts import (
    PAT_PID,
    STREAM_ID_PRIVATE_1,
    packetize,
    pes_packet,
    section_packet,
)

PLAYLIST_WINDOW = 6  # segments listed: enough for hls.js's 3-segment live offset, and a margin
RETAINED_SEGMENTS = 12  # kept, so a player holding a slightly stale playlist still gets them
# Payloads waiting for the next segment. IVS allows 5 calls/s per channel, so 5 wait at most;
# the bound only matters with raised local limits, where the oldest are dropped.
MAX_PENDING_TAGS = 256
# Tags of one segment are spaced by 1 ms, so players that order or key cues by time keep them
# apart and in arrival order.
TAG_SPACING_TICKS = 90
_EMPTY_TAG = empty_tag()


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of one channel: its own head (tables and ID3 tags), then the shared body."""

    sequence: int
    duration: float
    head: bytes
    body: bytes
    discontinuity: bool  # the encoder restarted: timestamps jump here
    tags: int  # metadata payloads it carries

    @property
    def data(self) -> bytes:
        """The segment as a player downloads it."""
        return self.head + self.body


class ChannelPlaylist:
    """A live playlist for one channel: payloads offered now go into the next segment added."""

    __slots__ = (
        "_discontinuity_sequence",
        "_id3_continuity",
        "_pending",
        "_segments",
        "dropped_tags",
        "name",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self._pending: deque[str] = deque()
        self._segments: deque[Segment] = deque()
        self._id3_continuity = 0
        self._discontinuity_sequence = 0
        self.dropped_tags = 0

    def __repr__(self) -> str:
        last = self._segments[-1].sequence if self._segments else None
        return (
            f"<ChannelPlaylist {self.name} segments={len(self._segments)} last={last}"
            f" pending={len(self._pending)} dropped={self.dropped_tags}>"
        )

    def __len__(self) -> int:
        return len(self._segments)

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The retained segments, oldest first."""
        return tuple(self._segments)

    @property
    def pending(self) -> int:
        """Payloads waiting for the next segment."""
        return len(self._pending)

    def offer(self, metadata: str) -> None:
        """Queue an accepted PutMetadata payload for the next segment."""
        if len(self._pending) >= MAX_PENDING_TAGS:
            self._pending.popleft()
            self.dropped_tags += 1
        self._pending.append(metadata)

    def add(
        self, sequence: int, encoded: EncodedSegment, *, discontinuity: bool = False
    ) -> Segment:
        """Append the encoder's segment `sequence`, carrying every payload offered before now."""
        tags = [txxx_tag(text) for text in self._pending] or [_EMPTY_TAG]
        carried = len(self._pending)
        self._pending.clear()
        program = encoded.program
        # One PAT and one PMT per segment (the encoder's own were left out of the body), so the
        # segment number is also their continuity counter.
        head = bytearray(section_packet(PAT_PID, program.pat, sequence & 0x0F))
        head += section_packet(program.pmt_pid, program.pmt, sequence & 0x0F)
        for index, tag in enumerate(tags):
            pes = pes_packet(
                STREAM_ID_PRIVATE_1, encoded.start_pts + index * TAG_SPACING_TICKS, tag
            )
            packets, self._id3_continuity = packetize(program.id3_pid, pes, self._id3_continuity)
            head += packets
        segment = Segment(
            sequence=sequence,
            duration=encoded.duration,
            head=bytes(head),
            body=encoded.body,
            discontinuity=discontinuity and bool(self._segments),
            tags=carried,
        )
        self._segments.append(segment)
        while len(self._segments) > RETAINED_SEGMENTS:
            if self._segments.popleft().discontinuity:
                self._discontinuity_sequence += 1
        return segment

    def segment(self, sequence: int) -> Segment | None:
        """The retained segment with this number, if any."""
        if not self._segments:
            return None
        index = sequence - self._segments[0].sequence
        if 0 <= index < len(self._segments):
            return self._segments[index]
        return None

    def render(self) -> str | None:
        """The live media playlist (relative segment URIs `<name>/<n>.ts`); None before any."""
        if not self._segments:
            return None
        listed = list(self._segments)[-PLAYLIST_WINDOW:]
        skipped = len(self._segments) - len(listed)
        discontinuities = self._discontinuity_sequence + sum(
            1 for segment in list(self._segments)[: skipped + 1] if segment.discontinuity
        )
        target = max(1, max(round(segment.duration) for segment in listed))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{listed[0].sequence}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        for index, segment in enumerate(listed):
            if segment.discontinuity and index > 0:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXTINF:{math.floor(segment.duration * 1000) / 1000:.3f},")
            lines.append(f"{self.name}/{segment.sequence}.ts")
        return "\n".join(lines) + "\n"
