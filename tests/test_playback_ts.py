"""The playback path's byte work: CRC, ID3 tags, PMT rewriting, PES packets and segment cutting."""

from __future__ import annotations

import random

import pytest

from metadata_gateway.local_ivs.playback.id3 import empty_tag, syncsafe, txxx_tag
from metadata_gateway.local_ivs.playback.splitter import MAX_SEGMENT_BYTES, SegmentSplitter
from metadata_gateway.local_ivs.playback.ts import (
    METADATA_DESCRIPTOR,
    METADATA_POINTER_DESCRIPTOR,
    PACKET_SIZE,
    PTS_MODULUS,
    STREAM_ID_PRIVATE_1,
    STREAM_TYPE_TIMED_ID3,
    ProgramMap,
    crc32_mpeg2,
    decode_pts,
    encode_pts,
    packetize,
    parse_header,
    pes_packet,
    pes_pts,
    pmt_pid_of,
    section_of,
    section_packet,
)

# The PAT and PMT ffmpeg 5.1 writes for H.264 on PID 0x100 and AAC on 0x101 (PMT on 0x1000).
FFMPEG_PAT = bytes.fromhex("00b00d0001c100000001f0002ab104b2")
FFMPEG_PMT = bytes.fromhex("02b0170001c10000e100f0001be100f0000fe101f0002f44b99b")
VIDEO_PID, AUDIO_PID, PMT_PID = 0x100, 0x101, 0x1000
FPS = 15


def reassemble(packets: bytes, pid: int) -> tuple[bytes, list[int]]:
    """The payload bytes of `pid`'s packets, and their continuity counters."""
    payload, counters = b"", []
    for at in range(0, len(packets), PACKET_SIZE):
        packet = packets[at : at + PACKET_SIZE]
        header = parse_header(packet)
        if header.pid == pid:
            payload += packet[header.payload_offset :]
            counters.append(packet[3] & 0x0F)
    return payload, counters


def es_packets(pid: int, pts: int, size: int, *, keyframe: bool, continuity: int) -> bytes:
    """A PES of `size` bytes on `pid`, its first packet flagged random-access when a keyframe."""
    packets, _ = packetize(pid, pes_packet(0xE0, pts, bytes(size)), continuity)
    if not keyframe:
        return packets
    # Rebuild the first packet with an adaptation field carrying random_access_indicator.
    first = bytearray(packets[:PACKET_SIZE])
    header, payload = first[:4], first[4:]
    header[3] = (header[3] & 0x0F) | 0x30
    flagged = bytes(header) + b"\x01\x40" + bytes(payload[:-2])
    rest = packets[PACKET_SIZE:]
    return flagged + rest


def synthetic_stream(seconds: int) -> tuple[bytes, list[int]]:
    """Tables, `seconds` s of 15 fps video (a keyframe a second) and audio, and the key PTSs."""
    out = bytearray()
    keyframes = []
    video_cc = audio_cc = 0
    for frame in range(seconds * FPS):
        pts = 1920 + frame * 6000  # 90 kHz / 15 fps
        if frame % 5 == 0:  # tables a few times a second, as ffmpeg writes them
            out += section_packet(0, FFMPEG_PAT, frame // 5)
            out += section_packet(PMT_PID, FFMPEG_PMT, frame // 5)
            out += section_packet(0x11, b"\x42\xf0\x05" + bytes(5), 0)  # an SDT-like table
        keyframe = frame % FPS == 0
        if keyframe:
            keyframes.append(pts)
        packets = es_packets(VIDEO_PID, pts, 900, keyframe=keyframe, continuity=video_cc)
        video_cc = (video_cc + len(packets) // PACKET_SIZE) & 0x0F
        out += packets
        audio = es_packets(AUDIO_PID, pts - 500, 300, keyframe=False, continuity=audio_cc)
        audio_cc = (audio_cc + len(audio) // PACKET_SIZE) & 0x0F
        out += audio
    return bytes(out), keyframes


def test_crc32_mpeg2_matches_the_standard_check_value() -> None:
    """CRC-32/MPEG-2 of "123456789" is 0x0376E6E7, and ffmpeg's own tables check out."""
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7
    for section in (FFMPEG_PAT, FFMPEG_PMT):
        assert crc32_mpeg2(section[:-4]).to_bytes(4, "big") == section[-4:]


def test_txxx_tag_carries_the_payload_unchanged_as_utf8() -> None:
    """An ID3v2.4 tag with one TXXX frame: UTF-8 encoding byte, empty description, the text."""
    text = '{"v":1,"c":[{"i":"a","t":"caption","d":{"text":"¿Qué? 日本 🎉"}}]}'
    body = b"\x03" + b"\x00" + text.encode()
    frame = b"TXXX" + syncsafe(len(body)) + b"\x00\x00" + body
    assert txxx_tag(text) == b"ID3\x04\x00\x00" + syncsafe(len(frame)) + frame


def test_empty_tag_is_a_header_with_no_frames() -> None:
    """The tag for segments without metadata is ten bytes and declares no frames."""
    assert empty_tag() == b"ID3\x04\x00\x00\x00\x00\x00\x00"


def test_syncsafe_integers_use_seven_bits_per_byte() -> None:
    """ID3 sizes are syncsafe: 128 is 00 00 01 00; more than 28 bits is refused."""
    assert syncsafe(127) == b"\x00\x00\x00\x7f"
    assert syncsafe(128) == b"\x00\x00\x01\x00"
    assert syncsafe(1046) == b"\x00\x00\x08\x16"
    with pytest.raises(ValueError, match="syncsafe"):
        syncsafe(1 << 28)


def test_pmt_parses_and_rebuilds_byte_for_byte() -> None:
    """ffmpeg's PMT parses into its two streams and serializes back to the same bytes."""
    program = ProgramMap.parse(FFMPEG_PMT)
    assert program is not None
    assert [(s.stream_type, s.pid) for s in program.streams] == [(0x1B, 0x100), (0x0F, 0x101)]
    assert program.video_pid == VIDEO_PID
    assert program.pcr_pid == VIDEO_PID
    assert program.section() == FFMPEG_PMT
    assert pmt_pid_of(FFMPEG_PAT) == PMT_PID


def test_timed_id3_stream_is_declared_as_apples_spec_describes() -> None:
    """The rewritten PMT adds stream_type 0x15 with a metadata descriptor naming "ID3 "."""
    program = ProgramMap.parse(FFMPEG_PMT)
    assert program is not None
    pid = program.free_pid(PMT_PID)
    assert pid == 0x102
    section = program.with_timed_id3(pid).section()
    assert crc32_mpeg2(section[:-4]).to_bytes(4, "big") == section[-4:]
    rebuilt = ProgramMap.parse(section)
    assert rebuilt is not None
    id3 = rebuilt.streams[-1]
    assert (id3.stream_type, id3.pid) == (STREAM_TYPE_TIMED_ID3, 0x102)
    assert id3.info == bytes([METADATA_DESCRIPTOR, 13]) + b"\xff\xffID3 \xffID3 \x00\x0f"
    assert rebuilt.program_info == (
        bytes([METADATA_POINTER_DESCRIPTOR, 15]) + b"\xff\xffID3 \xffID3 \x00\x1f\x00\x01"
    )
    assert rebuilt.streams[:2] == program.streams


@pytest.mark.parametrize("pts", [0, 1920, 90_000 * 3600, PTS_MODULUS - 1, PTS_MODULUS + 5])
def test_pts_round_trips_through_its_five_bytes(pts: int) -> None:
    """A PTS is written as 33 bits with marker bits and reads back the same (modulo 2^33)."""
    field = encode_pts(pts)
    assert field[0] >> 4 == 0x2
    assert [field[0] & 1, field[2] & 1, field[4] & 1] == [1, 1, 1]
    assert decode_pts(field) == pts % PTS_MODULUS


@pytest.mark.parametrize("size", [1, 169, 170, 171, 353, 1046])
def test_a_pes_is_packetized_whole_with_counters_that_continue(size: int) -> None:
    """Packets of 188 bytes, the first marked unit start, counters wrapping, the PES intact."""
    pes = pes_packet(STREAM_ID_PRIVATE_1, 1234567, bytes(range(256)) * 5)[: 14 + size]
    packets, next_cc = packetize(0x102, pes, 14)
    assert len(packets) % PACKET_SIZE == 0
    count = len(packets) // PACKET_SIZE
    payload, counters = reassemble(packets, 0x102)
    assert payload == pes
    assert counters == [(14 + n) % 16 for n in range(count)]
    assert next_cc == (14 + count) % 16
    assert [
        parse_header(packets[n : n + PACKET_SIZE]).unit_start
        for n in range(0, len(packets), PACKET_SIZE)
    ] == [True] + [False] * (count - 1)
    assert pes_pts(payload) == 1234567


def test_a_full_payload_tag_takes_at_most_six_packets() -> None:
    """1024 bytes of metadata, with its ID3 and PES headers, fit in six TS packets."""
    pes = pes_packet(STREAM_ID_PRIVATE_1, 0, txxx_tag("x" * 1024))
    packets, _ = packetize(0x102, pes, 0)
    assert len(packets) == 6 * PACKET_SIZE


def test_section_packet_carries_one_whole_section() -> None:
    """A table packet has pointer_field 0, the section, 0xFF stuffing, and is read back intact."""
    packet = section_packet(PMT_PID, FFMPEG_PMT, 9)
    header = parse_header(packet)
    assert (header.pid, header.unit_start, packet[3] & 0x0F) == (PMT_PID, True, 9)
    assert section_of(packet, header) == FFMPEG_PMT
    assert packet.endswith(b"\xff" * 10)


def test_splitter_cuts_at_each_keyframe_and_leaves_the_tables_out() -> None:
    """Fed in odd-sized chunks, the stream becomes one-second segments starting at keyframes."""
    stream, keyframes = synthetic_stream(4)
    splitter = SegmentSplitter()
    segments = []
    rng = random.Random(7)
    at = 0
    while at < len(stream):
        step = rng.randint(1, 5000)
        segments += splitter.feed(stream[at : at + step])
        at += step
    # The last segment ends only when the next keyframe arrives.
    assert [s.start_pts for s in segments] == keyframes[:-1]
    assert all(s.duration == 1.0 for s in segments)
    for segment in segments:
        first = parse_header(segment.body[:PACKET_SIZE])
        assert (first.pid, first.random_access) == (VIDEO_PID, True)
        pids = {
            parse_header(segment.body[n : n + PACKET_SIZE]).pid
            for n in range(0, len(segment.body), PACKET_SIZE)
        }
        assert pids == {VIDEO_PID, AUDIO_PID}
        assert segment.program.pat == FFMPEG_PAT
        assert segment.program.pmt_pid == PMT_PID
        assert segment.program.id3_pid == 0x102
        assert ProgramMap.parse(segment.program.pmt) is not None
    assert splitter.dropped_bytes == 0


def test_splitter_resyncs_after_garbage() -> None:
    """Bytes that are not packets are skipped and counted; the segments after them survive."""
    stream, keyframes = synthetic_stream(3)
    cut = PACKET_SIZE * 40
    splitter = SegmentSplitter()
    segments = splitter.feed(stream[:cut] + b"\x00\x01garbage" + stream[cut:])
    assert splitter.dropped_bytes == 9
    assert [s.start_pts for s in segments][-1] == keyframes[-2]


def test_splitter_drops_a_segment_that_never_ends() -> None:
    """A segment past MAX_SEGMENT_BYTES (no keyframe) is dropped rather than grown forever."""
    stream, _ = synthetic_stream(1)
    splitter = SegmentSplitter()
    splitter.feed(stream)
    filler = es_packets(VIDEO_PID, 0, 60_000, keyframe=False, continuity=0)
    for _ in range(MAX_SEGMENT_BYTES // len(filler) + 1):
        splitter.feed(filler)
    assert splitter.dropped_bytes > MAX_SEGMENT_BYTES
    assert "growing=0B" in repr(splitter)
