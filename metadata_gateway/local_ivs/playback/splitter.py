"""Cutting the encoder's continuous MPEG-TS into segments that each start at a video keyframe."""

from __future__ import annotations

from dataclasses import dataclass

from metadata_gateway.local_ivs.playback.ts import (
    PACKET_SIZE,
    PAT_PID,
    PTS_HZ,
    PTS_MODULUS,
    SYNC_BYTE,
    ProgramMap,
    parse_header,
    pes_pts,
    pmt_pid_of,
    section_of,
)

# A segment that has not ended by this size has lost its keyframes; it is dropped, not kept
# growing. One second of the test pattern is about 100 KB.
MAX_SEGMENT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Program:
    """The tables each segment starts with: the encoder's PAT, and its PMT plus timed ID3."""

    pat: bytes  # the PAT section, CRC included
    pmt_pid: int
    pmt: bytes  # the PMT section declaring the timed-ID3 stream, CRC included
    id3_pid: int


@dataclass(frozen=True, slots=True)
class EncodedSegment:
    """The audio and video packets from one keyframe to the next (tables left out)."""

    body: bytes
    start_pts: int  # the keyframe's PTS, in 90 kHz ticks
    duration: float  # seconds, to the next keyframe
    program: Program


class SegmentSplitter:
    """Fed the encoder's output in any chunks; returns each segment once the next one begins."""

    __slots__ = (
        "_body",
        "_buffer",
        "_pat",
        "_pmt_pid",
        "_pmt_section",
        "_program",
        "_start_pts",
        "_streams",
        "_video_pid",
        "dropped_bytes",
        "segments",
    )

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pat: bytes | None = None
        self._pmt_pid: int | None = None
        self._pmt_section: bytes | None = None
        self._program: Program | None = None
        self._streams: frozenset[int] = frozenset()
        self._video_pid: int | None = None
        self._body: bytearray | None = None
        self._start_pts = 0
        self.segments = 0
        self.dropped_bytes = 0  # lost sync, or a segment without an end

    def __repr__(self) -> str:
        growing = len(self._body) if self._body is not None else 0
        return (
            f"<SegmentSplitter segments={self.segments} growing={growing}B"
            f" dropped={self.dropped_bytes}B>"
        )

    def feed(self, data: bytes) -> list[EncodedSegment]:
        """Take more of the stream; return the segments it completed, in order."""
        buffer = self._buffer
        buffer += data
        done: list[EncodedSegment] = []
        at = 0
        while len(buffer) - at >= PACKET_SIZE:
            if buffer[at] != SYNC_BYTE:
                resync = buffer.find(SYNC_BYTE, at + 1)
                skip = (resync if resync != -1 else len(buffer)) - at
                self.dropped_bytes += skip
                at += skip
                continue
            segment = self._packet(bytes(buffer[at : at + PACKET_SIZE]))
            if segment is not None:
                done.append(segment)
            at += PACKET_SIZE
        del buffer[:at]
        return done

    def _packet(self, packet: bytes) -> EncodedSegment | None:
        header = parse_header(packet)
        if header.pid == PAT_PID:
            section = section_of(packet, header)
            if section is not None and section != self._pat:
                self._pat = section
                self._pmt_pid = pmt_pid_of(section)
                self._pmt_section = None
                self._program = None
            return None
        if header.pid == self._pmt_pid:
            section = section_of(packet, header)
            if section is not None and section != self._pmt_section:
                self._learn_program(section)
            return None
        if header.pid not in self._streams:
            return None  # SDT, null packets, or anything before the tables are known
        finished = None
        if header.pid == self._video_pid and header.unit_start and header.random_access:
            pts = pes_pts(packet[header.payload_offset :])
            if pts is not None:
                finished = self._finish(pts)
                self._body = bytearray()
                self._start_pts = pts
        if self._body is not None:
            self._body += packet
            if len(self._body) > MAX_SEGMENT_BYTES:
                self.dropped_bytes += len(self._body)
                self._body = None
        return finished

    def _learn_program(self, section: bytes) -> None:
        program_map = ProgramMap.parse(section)
        if program_map is None or self._pat is None or self._pmt_pid is None:
            return
        id3_pid = program_map.free_pid(self._pmt_pid)
        self._pmt_section = section
        self._program = Program(
            pat=self._pat,
            pmt_pid=self._pmt_pid,
            pmt=program_map.with_timed_id3(id3_pid).section(),
            id3_pid=id3_pid,
        )
        self._streams = frozenset(stream.pid for stream in program_map.streams)
        self._video_pid = program_map.video_pid
        self._body = None  # a segment must not mix two programs

    def _finish(self, next_pts: int) -> EncodedSegment | None:
        if self._body is None or self._program is None:
            return None
        self.segments += 1
        return EncodedSegment(
            body=bytes(self._body),
            start_pts=self._start_pts,
            duration=((next_pts - self._start_pts) % PTS_MODULUS) / PTS_HZ,
            program=self._program,
        )
