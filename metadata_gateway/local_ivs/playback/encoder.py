"""The one ffmpeg process that encodes the test pattern every live channel shares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import signal
from collections import deque
from collections.abc import Callable
from pathlib import Path

from metadata_gateway.local_ivs.playback.splitter import EncodedSegment, SegmentSplitter

logger = logging.getLogger(__name__)

FRAME_RATE = 15  # low, so the encode costs little on a shared 2-core machine
SEGMENT_FRAMES = FRAME_RATE  # a keyframe, and so a segment, every second
VIDEO_SIZE = "480x270"
READ_CHUNK = 64 * 1024
STOP_TIMEOUT = 3.0  # seconds ffmpeg gets to exit after SIGTERM before it is killed
STDERR_LINES = 20  # the last lines of ffmpeg's log, kept to explain an unexpected exit
INSTALL_HINT = "install it (Debian: apt-get install ffmpeg) or run without --playback"

_FILTER_SPECIAL = re.compile(r"([\\'\[\],;])")


class PlaybackUnavailable(RuntimeError):
    """Playback was asked for but cannot run on this machine."""


def find_ffmpeg(executable: str = "ffmpeg") -> str:
    """The path of the ffmpeg to run; PlaybackUnavailable (with what to do) if there is none."""
    path = shutil.which(executable)
    if path is None:
        raise PlaybackUnavailable(
            f"playback needs ffmpeg, and {executable!r} is not on PATH: {INSTALL_HINT}"
        )
    return path


def _filter_path(path: Path) -> str:
    # A path inside a filter graph is escaped twice: once for the filter's own options
    # (`\`, `'`, `:`), then for the graph around them.
    option = str(path).replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\:")
    return _FILTER_SPECIAL.sub(r"\\\1", option)


def encoder_command(ffmpeg: str, names_file: Path) -> list[str]:
    """The ffmpeg command: a test pattern with the live channels' names and the time, as TS."""
    text = "fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6"
    video = (
        f"[0:v]drawtext=textfile={_filter_path(names_file)}:reload=1:expansion=none"
        f":x=12:y=h-th-16:fontsize=28:{text},"
        f"drawtext=text='%{{localtime\\:%T}}':x=w-tw-12:y=h-th-16:fontsize=22:{text}[v];"
        "[1:a]volume=0.1[a]"
    )
    return [
        ffmpeg,
        *("-hide_banner", "-nostdin", "-loglevel", "error"),
        *("-re", "-f", "lavfi", "-i", f"testsrc2=size={VIDEO_SIZE}:rate={FRAME_RATE}"),
        *("-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-filter_complex", video, "-map", "[v]", "-map", "[a]"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"),
        *("-profile:v", "baseline", "-pix_fmt", "yuv420p", "-crf", "28"),
        *("-g", str(SEGMENT_FRAMES), "-keyint_min", str(SEGMENT_FRAMES), "-sc_threshold", "0"),
        *("-c:a", "aac", "-b:a", "64k", "-ac", "1"),
        # Packets leave at once and audio is not held back to be interleaved, so a segment is
        # complete as soon as the next keyframe is written.
        *("-flush_packets", "1", "-muxdelay", "0", "-muxpreload", "0"),
        *("-f", "mpegts", "pipe:1"),
    ]


class Encoder:
    """One run of ffmpeg: its output split into segments handed to `on_segment` as they end."""

    def __init__(self, command: list[str], on_segment: Callable[[EncodedSegment], None]) -> None:
        self._command = command
        self._on_segment = on_segment
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._splitter = SegmentSplitter()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)

    def __repr__(self) -> str:
        pid = self._process.pid if self._process else None
        code = self._process.returncode if self._process else None
        return f"<Encoder pid={pid} returncode={code} {self._splitter!r}>"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._process.pid if self._process else None

    async def run(self) -> int:
        """Start ffmpeg and pass on its segments until it exits; returns its exit status."""
        self._process = process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
            start_new_session=True,
        )
        try:
            if self._stopping:  # stop() came while the process was being started
                return await self._terminate()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump(), name="ffmpeg-stdout")
                tasks.create_task(self._drain_stderr(), name="ffmpeg-stderr")
            return await process.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """End ffmpeg: SIGTERM, then SIGKILL after STOP_TIMEOUT; returns once it has exited."""
        self._stopping = True
        if self._process is not None:
            await self._terminate()

    async def _terminate(self) -> int:
        process = self._process
        assert process is not None
        if process.returncode is not None:
            return process.returncode
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.shield(process.wait())
        except TimeoutError:
            logger.warning("ffmpeg (pid %s) ignored SIGTERM; killing it", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())
        return process.returncode if process.returncode is not None else -signal.SIGKILL

    async def _pump(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout
        while chunk := await stdout.read(READ_CHUNK):
            for segment in self._splitter.feed(chunk):
                self._on_segment(segment)

    async def _drain_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        async for line in self._process.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())
