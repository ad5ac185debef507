"""MPEG-TS as the playback path needs it: packet headers, PAT/PMT sections, PES, packetizing."""

from __future__ import annotations

from dataclasses import dataclass

PACKET_SIZE = 188
PAYLOAD_SIZE = PACKET_SIZE - 4  # after the 4-byte header, with no adaptation field
SYNC_BYTE = 0x47
PAT_PID = 0x0000
MAX_PID = 0x1FFE  # 0x1FFF is the null packet
FIRST_ES_PID = 0x0100  # PIDs below are reserved or conventionally used for tables
PTS_HZ = 90_000
PTS_MODULUS = 1 << 33  # PTS is a 33-bit counter that wraps after ~26.5 hours

TABLE_ID_PAT = 0x00
TABLE_ID_PMT = 0x02
STREAM_TYPE_TIMED_ID3 = 0x15  # ISO/IEC 13818-1: metadata carried in PES packets
VIDEO_STREAM_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x24})  # MPEG-1/2, MPEG-4, H.264, HEVC
STREAM_ID_PRIVATE_1 = 0xBD  # the PES stream id Apple's timed-metadata spec uses for ID3

# Descriptors from Apple's "Timed Metadata for HTTP Live Streaming": both name the format "ID3 "
# with format 0xFF and application format 0xFFFF ("defined by the format identifier").
_ID3_FORMAT = b"\xff\xff" + b"ID3 " + b"\xff" + b"ID3 "
METADATA_POINTER_DESCRIPTOR = 0x25
METADATA_DESCRIPTOR = 0x26


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final xor)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


@dataclass(frozen=True, slots=True)
class PacketHeader:
    """What the playback path reads from a TS packet's header and adaptation field."""

    pid: int
    unit_start: bool  # payload_unit_start_indicator: a PES or a section starts in this packet
    random_access: bool  # the adaptation field's random_access_indicator (a keyframe starts)
    payload_offset: int  # where the payload starts; PACKET_SIZE when there is none


def parse_header(packet: bytes) -> PacketHeader:
    """Read one 188-byte packet's header; ValueError if it does not start with the sync byte."""
    if len(packet) != PACKET_SIZE or packet[0] != SYNC_BYTE:
        raise ValueError("not an MPEG-TS packet")
    pid = ((packet[1] & 0x1F) << 8) | packet[2]
    control = (packet[3] >> 4) & 0x3
    offset = 4
    random_access = False
    if control & 0x2:
        length = packet[4]
        random_access = length > 0 and bool(packet[5] & 0x40)
        offset = 5 + length
    if not control & 0x1:
        offset = PACKET_SIZE
    return PacketHeader(
        pid=pid,
        unit_start=bool(packet[1] & 0x40),
        random_access=random_access,
        payload_offset=min(offset, PACKET_SIZE),
    )


def section_of(packet: bytes, header: PacketHeader) -> bytes | None:
    """The PSI section starting in `packet` (CRC included), or None if it does not fit in it."""
    if not header.unit_start or header.payload_offset >= PACKET_SIZE:
        return None
    start = header.payload_offset + 1 + packet[header.payload_offset]  # skip the pointer_field
    if start + 3 > PACKET_SIZE:
        return None
    length = ((packet[start + 1] & 0x0F) << 8) | packet[start + 2]
    end = start + 3 + length
    # The tables ffmpeg writes fit one packet; a longer one is simply not understood.
    if end > PACKET_SIZE:
        return None
    section = packet[start:end]
    if crc32_mpeg2(section[:-4]) != int.from_bytes(section[-4:], "big"):
        return None
    return section


def pmt_pid_of(pat: bytes) -> int | None:
    """The PMT PID of the first program a PAT section lists (program 0 is the network PID)."""
    if pat[0] != TABLE_ID_PAT:
        return None
    for at in range(8, len(pat) - 4, 4):
        program = int.from_bytes(pat[at : at + 2], "big")
        if program != 0:
            return int.from_bytes(pat[at + 2 : at + 4], "big") & 0x1FFF
    return None


@dataclass(frozen=True, slots=True)
class ElementaryStream:
    """One entry of a PMT's stream loop."""

    stream_type: int
    pid: int
    info: bytes  # the ES_info descriptors, verbatim


@dataclass(frozen=True, slots=True)
class ProgramMap:
    """A parsed PMT section (single-section programs only)."""

    program_number: int
    version: int
    pcr_pid: int
    program_info: bytes
    streams: tuple[ElementaryStream, ...]

    @classmethod
    def parse(cls, section: bytes) -> ProgramMap | None:
        """Parse a PMT section with a valid CRC; None if it is not one."""
        if len(section) < 16 or section[0] != TABLE_ID_PMT:
            return None
        info_length = int.from_bytes(section[10:12], "big") & 0x0FFF
        at = 12 + info_length
        end = len(section) - 4
        streams = []
        while at + 5 <= end:
            es_length = int.from_bytes(section[at + 3 : at + 5], "big") & 0x0FFF
            streams.append(
                ElementaryStream(
                    stream_type=section[at],
                    pid=int.from_bytes(section[at + 1 : at + 3], "big") & 0x1FFF,
                    info=bytes(section[at + 5 : at + 5 + es_length]),
                )
            )
            at += 5 + es_length
        return cls(
            program_number=int.from_bytes(section[3:5], "big"),
            version=(section[5] >> 1) & 0x1F,
            pcr_pid=int.from_bytes(section[8:10], "big") & 0x1FFF,
            program_info=bytes(section[12 : 12 + info_length]),
            streams=tuple(streams),
        )

    @property
    def video_pid(self) -> int | None:
        """The first video stream's PID: segments start at its keyframes."""
        return next((s.pid for s in self.streams if s.stream_type in VIDEO_STREAM_TYPES), None)

    def free_pid(self, *taken: int) -> int:
        """The lowest elementary-stream PID that neither this program nor `taken` uses."""
        used = {s.pid for s in self.streams} | {self.pcr_pid, *taken}
        return next(pid for pid in range(FIRST_ES_PID, MAX_PID + 1) if pid not in used)

    def with_timed_id3(self, pid: int) -> ProgramMap:
        """This program plus a timed-ID3 stream on `pid`, described as Apple's spec asks."""
        pointer = (
            _ID3_FORMAT + b"\x00" + b"\x1f" + self.program_number.to_bytes(2, "big")
        )  # service 0; no locator record, carriage 0 (same transport stream), 5 reserved bits
        descriptor = _ID3_FORMAT + b"\x00" + b"\x0f"  # service 0; no DSM-CC, 4 reserved bits
        return ProgramMap(
            program_number=self.program_number,
            version=self.version,
            pcr_pid=self.pcr_pid,
            program_info=self.program_info
            + bytes([METADATA_POINTER_DESCRIPTOR, len(pointer)])
            + pointer,
            streams=(
                *self.streams,
                ElementaryStream(
                    STREAM_TYPE_TIMED_ID3,
                    pid,
                    bytes([METADATA_DESCRIPTOR, len(descriptor)]) + descriptor,
                ),
            ),
        )

    def section(self) -> bytes:
        """The PMT section, CRC included."""
        body = bytearray()
        body += self.program_number.to_bytes(2, "big")
        body.append(0xC1 | (self.version << 1))  # reserved bits, version, current_next = 1
        body += b"\x00\x00"  # section 0 of 0
        body += (0xE000 | self.pcr_pid).to_bytes(2, "big")
        body += (0xF000 | len(self.program_info)).to_bytes(2, "big")
        body += self.program_info
        for stream in self.streams:
            body.append(stream.stream_type)
            body += (0xE000 | stream.pid).to_bytes(2, "big")
            body += (0xF000 | len(stream.info)).to_bytes(2, "big")
            body += stream.info
        # section_syntax_indicator, '0', reserved; the length counts what follows, CRC included.
        head = bytes([TABLE_ID_PMT]) + (0xB000 | (len(body) + 4)).to_bytes(2, "big")
        section = head + bytes(body)
        return section + crc32_mpeg2(section).to_bytes(4, "big")


def section_packet(pid: int, section: bytes, continuity: int) -> bytes:
    """One packet carrying a whole PSI section (pointer_field 0, stuffed with 0xFF)."""
    if len(section) > PAYLOAD_SIZE - 1:
        raise ValueError("the section does not fit one packet")
    header = bytes([SYNC_BYTE, 0x40 | (pid >> 8), pid & 0xFF, 0x10 | (continuity & 0x0F)])
    payload = b"\x00" + section
    return header + payload + b"\xff" * (PAYLOAD_SIZE - len(payload))


def encode_pts(pts: int, marker: int = 0x2) -> bytes:
    """The 5-byte PTS field of a PES header ('0010' prefix for a PTS alone)."""
    pts %= PTS_MODULUS
    return bytes(
        [
            (marker << 4) | ((pts >> 29) & 0x0E) | 1,
            (pts >> 22) & 0xFF,
            ((pts >> 14) & 0xFE) | 1,
            (pts >> 7) & 0xFF,
            ((pts << 1) & 0xFE) | 1,
        ]
    )


def decode_pts(field: bytes) -> int:
    """The PTS a 5-byte PES timestamp field holds."""
    return (
        ((field[0] >> 1) & 0x07) << 30
        | field[1] << 22
        | (field[2] >> 1) << 15
        | field[3] << 7
        | field[4] >> 1
    )


def pes_pts(payload: bytes) -> int | None:
    """The PTS of a PES packet starting at `payload`, if it has one."""
    if len(payload) < 14 or payload[:3] != b"\x00\x00\x01" or not payload[7] & 0x80:
        return None
    return decode_pts(payload[9:14])


def pes_packet(stream_id: int, pts: int, data: bytes) -> bytes:
    """A PES packet with a PTS and the data-alignment flag (each tag starts a PES of its own)."""
    header = bytes([0x84, 0x80, 5]) + encode_pts(pts)  # '10', data_alignment; PTS only
    length = len(header) + len(data)
    if length > 0xFFFF:
        raise ValueError("PES payload too large")
    return b"\x00\x00\x01" + bytes([stream_id]) + length.to_bytes(2, "big") + header + data


def packetize(pid: int, pes: bytes, continuity: int) -> tuple[bytes, int]:
    """Split a PES into packets on `pid`; returns them and the next continuity counter."""
    out = bytearray()
    at = 0
    first = True
    while at < len(pes):
        chunk = pes[at : at + PAYLOAD_SIZE]
        at += len(chunk)
        start = 0x40 if first else 0x00
        first = False
        stuffing = PAYLOAD_SIZE - len(chunk)
        if stuffing == 0:
            out += bytes([SYNC_BYTE, start | (pid >> 8), pid & 0xFF, 0x10 | continuity])
        else:
            # The last chunk is padded with an adaptation field: its length byte, then (when
            # there is room) a flags byte of zeros and 0xFF stuffing.
            field = bytes([stuffing - 1])
            if stuffing > 1:
                field += b"\x00" + b"\xff" * (stuffing - 2)
            out += bytes([SYNC_BYTE, start | (pid >> 8), pid & 0xFF, 0x30 | continuity]) + field
        out += chunk
        continuity = (continuity + 1) & 0x0F
    return bytes(out), continuity
