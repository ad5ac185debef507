"""Playback in the local IVS: a live channel's playbackUrl serves HLS carrying its metadata."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from browser.harness import require_ffmpeg
from test_playback_ts import synthetic_stream

from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings
from metadata_gateway.local_ivs.cli import add_arguments, settings_from
from metadata_gateway.local_ivs.playback import Playback, PlaybackUnavailable
from metadata_gateway.local_ivs.playback.encoder import encoder_command
from metadata_gateway.local_ivs.playback.splitter import SegmentSplitter
from metadata_gateway.local_ivs.state import LocalIvsState

RNG_SEED = 20200714


@pytest.fixture
async def playback_ivs() -> AsyncIterator[LocalIvs]:
    """A local IVS on a free port with playback on (real ffmpeg)."""
    require_ffmpeg()
    async with LocalIvs(
        LocalIvsSettings(port=0, playback=True), rng=random.Random(RNG_SEED)
    ) as ivs:
        yield ivs


def playback_of(ivs: LocalIvs) -> Playback:
    assert ivs.playback is not None
    return ivs.playback


def live(ivs: LocalIvs, name: str) -> tuple[str, str]:
    """Create a channel, start its stream; return its ARN and its playbackUrl."""
    channel = ivs.state.create_channel(name=name)["channel"]
    ivs.state.start_stream(channel["arn"])
    return channel["arn"], channel["playbackUrl"]


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat


async def test_playback_url_serves_a_live_playlist_and_segments(
    playback_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """The playbackUrl IVS returns answers a live HLS playlist whose segments are MPEG-TS."""
    _, url = live(playback_ivs, "demo")
    assert url.startswith(f"{playback_ivs.url}/_local/playback/")
    async with http.get(url) as response:  # waits for the first segment
        assert response.status == 200
        assert response.content_type == "application/vnd.apple.mpegurl"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        text = await response.text()
    assert text.startswith("#EXTM3U\n")
    assert "#EXT-X-TARGETDURATION:1\n" in text
    segment = next(line for line in text.splitlines() if line.endswith(".ts"))
    async with http.get(f"{url.rsplit('/', 1)[0]}/{segment}") as response:
        assert response.status == 200
        assert response.content_type == "video/mp2t"
        data = await response.read()
    assert len(data) % 188 == 0
    assert data[0] == 0x47
    assert (data[1] & 0x1F, data[2]) == (0, 0)  # it starts with the PAT


async def test_metadata_goes_only_into_its_own_channels_next_segment(
    playback_ivs: LocalIvs,
) -> None:
    """One encode feeds two channels; a payload lands in the next segment of its channel only."""
    first, _ = live(playback_ivs, "first")
    second, _ = live(playback_ivs, "second")
    playback = playback_of(playback_ivs)
    a = playback.channel(first.rsplit("/", 1)[-1])
    b = playback.channel(second.rsplit("/", 1)[-1])
    assert a is not None
    assert b is not None
    await wait_until(lambda: len(a) >= 1)
    last = a.segments[-1].sequence
    playback_ivs.state.put_metadata(first, '{"v":1,"c":[{"i":"x","t":"quiz","d":{}}]}')
    assert a.pending == 1
    await wait_until(lambda: a.pending == 0, within=5)
    assert [s.sequence for s in a.segments if s.tags] == [last + 1]
    assert not any(s.tags for s in b.segments)
    # The media is shared: one encoder, the same bytes behind both channels' segments.
    common = {s.sequence for s in a.segments} & {s.sequence for s in b.segments}
    assert common
    for sequence in common:
        assert a.segment(sequence).body is b.segment(sequence).body  # type: ignore[union-attr]
    assert playback.encoder_runs == 1


async def test_stop_stream_ends_playback_and_then_the_encoder(
    playback_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """StopStream makes the playlist 404; with no channel live, ffmpeg is stopped."""
    arn, url = live(playback_ivs, "demo")
    async with http.get(url) as response:
        assert response.status == 200
    playback = playback_of(playback_ivs)
    pid = playback.encoder_pid
    assert pid is not None
    playback_ivs.state.stop_stream(arn)
    async with http.get(url) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "ResourceNotFoundException"
    await wait_until(lambda: playback.encoder_pid is None and not process_exists(pid), within=5)


async def test_a_channel_that_is_not_live_has_no_playlist(
    playback_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """An offline or unknown channel's playlist and segments answer 404 at once."""
    channel = playback_ivs.state.create_channel(name="offline")["channel"]
    started = time.monotonic()
    async with http.get(channel["playbackUrl"]) as response:
        assert response.status == 404
    async with http.get(f"{playback_ivs.url}/_local/playback/nope/3.ts") as response:
        assert response.status == 404
    assert time.monotonic() - started < 1


async def test_closing_the_local_ivs_stops_ffmpeg() -> None:
    """However playback ends, the encoder process is gone once the local IVS has closed."""
    require_ffmpeg()
    async with LocalIvs(LocalIvsSettings(port=0, playback=True)) as ivs:
        live(ivs, "demo")
        playback = playback_of(ivs)
        await wait_until(lambda: playback.encoder_pid is not None)
        pid = playback.encoder_pid
        assert pid is not None
    assert not process_exists(pid)


async def test_without_playback_the_path_is_unknown_as_before(
    local_ivs: LocalIvs, http: aiohttp.ClientSession
) -> None:
    """With playback off (the default) the playback URL is not served, and no ffmpeg runs."""
    channel = local_ivs.state.create_channel(name="demo")["channel"]
    local_ivs.state.start_stream(channel["arn"])
    async with http.get(channel["playbackUrl"]) as response:
        assert response.status == 404
        assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"


async def test_missing_ffmpeg_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Playback without ffmpeg on PATH refuses to start, saying what is missing and what to do."""
    monkeypatch.setenv("PATH", str(tmp_path))
    ivs = LocalIvs(LocalIvsSettings(port=0, playback=True))
    with pytest.raises(PlaybackUnavailable, match=r"needs ffmpeg.*apt-get install ffmpeg"):
        await ivs.start()
    await ivs.close()


async def test_cli_without_ffmpeg_exits_2_with_the_reason(tmp_path: Path) -> None:
    """`local-ivs --playback` on a machine without ffmpeg exits 2 and names ffmpeg."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_LOCAL_IVS_")}
    env["PATH"] = str(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "metadata_gateway",
        "local-ivs",
        "--port",
        "0",
        "--playback",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(20):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"playback needs ffmpeg" in stderr
    assert b"Traceback" not in stderr


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], None, False),
        (["--playback"], None, True),
        (["--playback", "false"], "1", False),
        ([], "yes", True),
        ([], "0", False),
    ],
)
def test_cli_playback_flag_and_environment(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, expected: bool
) -> None:
    """`--playback` (or MG_LOCAL_IVS_PLAYBACK) turns playback on; it is off by default."""
    monkeypatch.delenv("MG_LOCAL_IVS_PLAYBACK", raising=False)
    if env is not None:
        monkeypatch.setenv("MG_LOCAL_IVS_PLAYBACK", env)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from(parser.parse_args(argv)).playback is expected


def test_cli_refuses_a_bad_playback_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MG_LOCAL_IVS_PLAYBACK that is not a boolean stops argument parsing with status 2."""
    monkeypatch.setenv("MG_LOCAL_IVS_PLAYBACK", "maybe")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit) as raised:
        parser.parse_args([])
    assert raised.value.code == 2


# -- the encoder's lifetime, with a stand-in for ffmpeg ---------------------------------------

FAKE_ENCODER = """
import sys, time
data = open(sys.argv[1], "rb").read()
step = 188 * 40
for at in range(0, len(data), step):
    sys.stdout.buffer.write(data[at : at + step])
    sys.stdout.buffer.flush()
    time.sleep(0.01)
sys.exit(3)
"""


@pytest.fixture
def fake_ffmpeg(tmp_path: Path) -> Callable[[str, Path], list[str]]:
    """A command that writes three seconds of synthetic TS quickly, then exits with status 3."""
    stream, _ = synthetic_stream(3)
    source = tmp_path / "stream.ts"
    source.write_bytes(stream)
    script = tmp_path / "fake_ffmpeg.py"
    script.write_text(FAKE_ENCODER)

    def command(ffmpeg: str, names: Path) -> list[str]:
        assert names.read_text() == "demo"  # the live channels' names, drawn on the picture
        return [ffmpeg, str(script), str(source)]

    return command


async def test_an_encoder_that_dies_is_restarted_with_a_discontinuity(
    fake_ffmpeg: Callable[[str, Path], list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """ffmpeg exiting while a channel is live is logged and restarted; the playlist marks it."""
    state = LocalIvsState(LocalIvsSettings(port=0))
    arn = state.create_channel(name="demo")["channel"]["arn"]
    channel_id = arn.rsplit("/", 1)[-1]
    playback = Playback(state, ffmpeg=sys.executable, command=fake_ffmpeg)
    await playback.start()
    try:
        state.start_stream(arn)
        await wait_until(
            lambda: "#EXT-X-DISCONTINUITY\n" in (playback.playlist(channel_id) or ""), within=8
        )
    finally:
        await playback.close()
    assert playback.encoder_runs >= 2
    assert "ffmpeg exited with status 3" in caplog.text
    assert playback.encoder_pid is None
    assert playback.playlist(channel_id) is None


async def test_the_encoder_command_makes_one_second_segments_even_from_an_odd_path(
    tmp_path: Path,
) -> None:
    """The real ffmpeg command, its names file under a path full of filter syntax, cuts at 1 s."""
    require_ffmpeg()
    odd = tmp_path / "we:ird'dir, [x];"
    odd.mkdir()
    (odd / "names.txt").write_text("demo")
    command = encoder_command("ffmpeg", odd / "names.txt")
    command[-3:-3] = ["-t", "2.5"]  # a bounded run: 2.5 s of stream
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    segments = SegmentSplitter().feed(out)
    assert [s.duration for s in segments] == [1.0, 1.0]
    assert segments[1].start_pts - segments[0].start_pts == 90_000
    assert segments[0].program.id3_pid == 0x102
