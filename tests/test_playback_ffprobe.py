"""The local IVS's segments read by an independent parser: ffprobe's `timed_id3` stream."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from browser.harness import require_ffmpeg

from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings
from metadata_gateway.local_ivs.playback.id3 import empty_tag, txxx_tag
from metadata_gateway.local_ivs.playback.playlist import TAG_SPACING_TICKS

PAYLOADS = [
    '{"v":1,"c":[{"i":"a1","t":"caption","d":{"text":"¿Qué? 日本語 🎉 \\u0000"}}]}',
    "r" * 1024,  # a raw payload of the largest size IVS allows
]


def hexdump_bytes(dump: str) -> bytes:
    """The bytes of ffprobe's `-show_data` hex dump (`offset: 8 groups of 4 hex digits  ascii`)."""
    return b"".join(
        bytes.fromhex(line[10:49].replace(" ", "")) for line in dump.splitlines() if line.strip()
    )


def txxx_value(tag: bytes) -> bytes:
    """The value of the one TXXX frame in an ID3 tag (as far as the frame header goes)."""
    at = tag.index(b"TXXX")
    size = sum(b << (7 * (3 - n)) for n, b in enumerate(tag[at + 4 : at + 8]))
    body = tag[at + 10 : at + 10 + size]
    assert body[0] == 0x03  # UTF-8
    return body[body.index(b"\x00", 1) + 1 :]


async def ffprobe(path: Path) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "ffprobe",
        *("-v", "error", "-show_streams", "-show_packets", "-show_data", "-of", "json", str(path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out)
    return result


async def test_ffprobe_finds_each_payload_byte_for_byte_at_the_segment_start(
    tmp_path: Path,
) -> None:
    """ffprobe sees a timed_id3 stream whose packets hold the payloads exactly, at the keyframe."""
    require_ffmpeg()
    settings = LocalIvsSettings(port=0, playback=True)
    async with (
        LocalIvs(settings, rng=random.Random(1)) as ivs,
        aiohttp.ClientSession() as http,
    ):
        channel = ivs.state.create_channel(name="probe")["channel"]
        ivs.state.start_stream(channel["arn"])
        async with http.get(channel["playbackUrl"]) as response:
            assert response.status == 200
        channel_id = channel["arn"].rsplit("/", 1)[-1]
        assert ivs.playback is not None
        playlist = ivs.playback.channel(channel_id)
        assert playlist is not None
        for payload in PAYLOADS:
            ivs.state.put_metadata(channel["arn"], payload)
        deadline = time.monotonic() + 10
        while playlist.pending or not any(s.tags for s in playlist.segments):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        carrying = next(s for s in playlist.segments if s.tags)
        empty = next(s for s in playlist.segments if not s.tags)
        base = channel["playbackUrl"].removesuffix(".m3u8")  # segments are <id>/<n>.ts beside it
        files = {}
        for name, segment in (("carrying", carrying), ("empty", empty)):
            async with http.get(f"{base}/{segment.sequence}.ts") as response:
                files[name] = tmp_path / f"{name}.ts"
                files[name].write_bytes(await response.read())

    probed = await ffprobe(files["carrying"])
    data_streams = [s for s in probed["streams"] if s["codec_type"] == "data"]
    assert [s["codec_name"] for s in data_streams] == ["timed_id3"]
    id3_index = data_streams[0]["index"]
    video = next(s["index"] for s in probed["streams"] if s["codec_type"] == "video")
    packets = [p for p in probed["packets"] if p["stream_index"] == id3_index]
    keyframe_pts = next(p["pts"] for p in probed["packets"] if p["stream_index"] == video)
    assert [p["pts"] for p in packets] == [keyframe_pts, keyframe_pts + TAG_SPACING_TICKS]
    for packet, payload in zip(packets, PAYLOADS, strict=True):
        data = hexdump_bytes(packet["data"])
        tag = txxx_tag(payload)
        # ffmpeg's demuxer hands on ID3 tags without their first five bytes ("ID3", version).
        assert data in (tag, tag[5:])
        assert txxx_value(data) == payload.encode()

    probed = await ffprobe(files["empty"])
    id3_index = next(s["index"] for s in probed["streams"] if s["codec_name"] == "timed_id3")
    [packet] = [p for p in probed["packets"] if p["stream_index"] == id3_index]
    assert hexdump_bytes(packet["data"]) in (empty_tag(), empty_tag()[5:])
