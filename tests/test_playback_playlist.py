"""A channel's live playlist: metadata into the next segment, tables and tags first, bounded."""

from __future__ import annotations

from metadata_gateway.local_ivs.playback.id3 import empty_tag, txxx_tag
from metadata_gateway.local_ivs.playback.playlist import (
    MAX_PENDING_TAGS,
    PLAYLIST_WINDOW,
    RETAINED_SEGMENTS,
    TAG_SPACING_TICKS,
    ChannelPlaylist,
)
from metadata_gateway.local_ivs.playback.splitter import EncodedSegment, Program
from metadata_gateway.local_ivs.playback.ts import (
    PACKET_SIZE,
    ProgramMap,
    decode_pts,
    parse_header,
    section_of,
)

PAT = bytes.fromhex("00b00d0001c100000001f0002ab104b2")
PMT = bytes.fromhex("02b0170001c10000e100f0001be100f0000fe101f0002f44b99b")
PROGRAM_MAP = ProgramMap.parse(PMT)
assert PROGRAM_MAP is not None
PROGRAM = Program(
    pat=PAT, pmt_pid=0x1000, pmt=PROGRAM_MAP.with_timed_id3(0x102).section(), id3_pid=0x102
)
BODY = b"\x47\x01\x00\x10" + bytes(184)  # one video packet stands in for a second of media


def encoded(start_pts: int, duration: float = 1.0) -> EncodedSegment:
    return EncodedSegment(body=BODY, start_pts=start_pts, duration=duration, program=PROGRAM)


def tags_of(head: bytes) -> list[tuple[int, bytes]]:
    """(PTS, ID3 tag) of each PES on the timed-ID3 PID, in order."""
    stream = b""
    for at in range(0, len(head), PACKET_SIZE):
        packet = head[at : at + PACKET_SIZE]
        header = parse_header(packet)
        if header.pid == PROGRAM.id3_pid:
            stream += packet[header.payload_offset :]
    tags = []
    while stream:
        assert stream[:4] == b"\x00\x00\x01\xbd"
        length = int.from_bytes(stream[4:6], "big")
        pes, stream = stream[: 6 + length], stream[6 + length :]
        tags.append((decode_pts(pes[9:14]), pes[14:]))
    return tags


def test_offered_payloads_go_into_the_next_segment_in_order_then_nothing_but_an_empty_tag() -> None:
    """Payloads accepted before a segment ends ride in it, 1 ms apart from its start, once."""
    playlist = ChannelPlaylist("ch")
    playlist.offer('{"v":1,"c":[{"i":"a","t":"quiz","d":{}}]}')
    playlist.offer("GOAL 1-0")
    first = playlist.add(0, encoded(90_000))
    second = playlist.add(1, encoded(180_000))
    assert tags_of(first.head) == [
        (90_000, txxx_tag('{"v":1,"c":[{"i":"a","t":"quiz","d":{}}]}')),
        (90_000 + TAG_SPACING_TICKS, txxx_tag("GOAL 1-0")),
    ]
    assert first.tags == 2
    assert tags_of(second.head) == [(180_000, empty_tag())]
    assert second.tags == 0
    assert first.body is second.body is BODY  # the media itself is shared, never copied


def test_each_segment_starts_with_pat_and_the_pmt_declaring_timed_id3() -> None:
    """A segment is PAT, PMT (with the ID3 stream), the tags, then the shared media."""
    segment = ChannelPlaylist("ch").add(21, encoded(0))
    data = segment.data
    pat, pmt = data[:PACKET_SIZE], data[PACKET_SIZE : 2 * PACKET_SIZE]
    assert section_of(pat, parse_header(pat)) == PAT
    assert section_of(pmt, parse_header(pmt)) == PROGRAM.pmt
    # One table packet per segment, so the segment number is their continuity counter.
    assert pat[3] & 0x0F == pmt[3] & 0x0F == 21 % 16
    assert data.endswith(BODY)


def test_id3_continuity_counters_carry_on_across_segments() -> None:
    """The ID3 PID's continuity counter continues from segment to segment, wrapping at 16."""
    playlist = ChannelPlaylist("ch")
    counters = []
    for n in range(20):
        playlist.offer("x" * 500)  # three packets each
        head = playlist.add(n, encoded(n * 90_000)).head
        for at in range(2 * PACKET_SIZE, len(head), PACKET_SIZE):
            counters.append(head[at + 3] & 0x0F)
    assert counters == [n % 16 for n in range(len(counters))]


def test_playlist_lists_the_last_segments_with_relative_uris() -> None:
    """The playlist lists the newest six of the retained segments, numbered as the encoder's."""
    playlist = ChannelPlaylist("abc123")
    assert playlist.render() is None
    for n in range(100, 100 + RETAINED_SEGMENTS + 3):
        playlist.add(n, encoded(n * 90_000, duration=1.0 if n % 2 else 0.999))
    text = playlist.render()
    assert text is not None
    lines = text.splitlines()
    first = 100 + RETAINED_SEGMENTS + 3 - PLAYLIST_WINDOW
    assert lines[:6] == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:1",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    assert [line for line in lines if line.endswith(".ts")] == [
        f"abc123/{n}.ts" for n in range(first, first + PLAYLIST_WINDOW)
    ]
    assert "#EXTINF:0.999," in lines
    assert len(playlist) == RETAINED_SEGMENTS
    assert playlist.segment(100) is None  # slid out
    retained = playlist.segment(103)
    assert retained is not None
    assert retained.sequence == 103


def test_an_encoder_restart_is_marked_as_a_discontinuity() -> None:
    """After a restart the timestamps jump: the playlist says so, and counts it once it slides."""
    playlist = ChannelPlaylist("ch")
    for n in range(3):
        playlist.add(n, encoded(n * 90_000))
    playlist.add(3, encoded(0), discontinuity=True)
    playlist.add(4, encoded(90_000))
    text = playlist.render()
    assert text is not None
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("ch/3.ts")
    for n in range(5, 5 + RETAINED_SEGMENTS):
        playlist.add(n, encoded(n * 90_000))
    text = playlist.render()
    assert text is not None
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text
    assert "#EXT-X-DISCONTINUITY\n" not in text


def test_a_first_segment_is_never_a_discontinuity() -> None:
    """A channel that goes live after a restart has nothing before its first segment to break."""
    segment = ChannelPlaylist("ch").add(7, encoded(0), discontinuity=True)
    assert not segment.discontinuity


def test_pending_payloads_are_bounded_dropping_the_oldest() -> None:
    """Past MAX_PENDING_TAGS waiting payloads, the oldest are dropped and counted."""
    playlist = ChannelPlaylist("ch")
    for n in range(MAX_PENDING_TAGS + 2):
        playlist.offer(str(n))
    assert playlist.pending == MAX_PENDING_TAGS
    assert playlist.dropped_tags == 2
    segment = playlist.add(0, encoded(0))
    assert segment.tags == MAX_PENDING_TAGS
    assert tags_of(segment.head)[0][1] == txxx_tag("2")
    assert "dropped=2" in repr(playlist)
