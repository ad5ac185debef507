"""Playback for the local IVS: live channels, the shared encoder, and each channel's playlist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from metadata_gateway.local_ivs.errors import IvsError
from metadata_gateway.local_ivs.events import MetadataEvent
from metadata_gateway.local_ivs.playback.encoder import (
    STOP_TIMEOUT,
    Encoder,
    encoder_command,
    find_ffmpeg,
)
from metadata_gateway.local_ivs.playback.playlist import PLAYLIST_WINDOW, ChannelPlaylist
from metadata_gateway.local_ivs.playback.splitter import EncodedSegment
from metadata_gateway.local_ivs.state import LocalIvsState

logger = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # after ffmpeg exits on its own, doubling up to RESTART_DELAY_MAX
RESTART_DELAY_MAX = 10.0
NAMES_SHOWN = 3  # channel names drawn on the shared picture; the rest are counted


class _Live:
    """A live channel: its playlist, its metadata subscription, and who waits for a segment."""

    __slots__ = ("arn", "playlist", "ready", "unsubscribe")

    def __init__(self, arn: str, playlist: ChannelPlaylist, unsubscribe: Callable[[], None]):
        self.arn = arn
        self.playlist = playlist
        self.unsubscribe = unsubscribe
        self.ready = asyncio.Event()


class Playback:
    """Serves every live channel of a LocalIvsState as HLS, with its metadata as timed ID3."""

    def __init__(
        self,
        state: LocalIvsState,
        *,
        ffmpeg: str = "ffmpeg",
        command: Callable[[str, Path], list[str]] = encoder_command,
    ) -> None:
        self._state = state
        self._ffmpeg = ffmpeg
        self._command = command
        self._live: dict[str, _Live] = {}  # by channel id, the last part of the ARN
        self._recent: deque[tuple[int, EncodedSegment]] = deque(maxlen=PLAYLIST_WINDOW)
        self._sequence = 0  # numbers segments across channels and encoder runs
        self._restarted = False  # the next segment follows an encoder restart
        self._changed = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._encoder: Encoder | None = None
        self.encoder_runs = 0

    def __repr__(self) -> str:
        return (
            f"<Playback live={len(self._live)} segments={self._sequence} encoder={self._encoder!r}>"
        )

    @property
    def encoder_pid(self) -> int | None:
        """The running ffmpeg's process id, if one runs."""
        return self._encoder.pid if self._encoder else None

    async def start(self) -> None:
        """Check for ffmpeg (PlaybackUnavailable if missing) and follow the state's streams."""
        self._ffmpeg = find_ffmpeg(self._ffmpeg)
        self._workdir = tempfile.TemporaryDirectory(prefix="mg-playback-")
        self._write_names()
        self._supervisor = asyncio.create_task(self._supervise(), name="local-ivs-playback")
        self._unwatch = self._state.watch_streams(self._stream_changed)

    async def close(self) -> None:
        """Stop following streams, stop ffmpeg and forget every segment."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        for channel_id in list(self._live):
            self._drop(channel_id)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    # -- what the routes ask ----------------------------------------------------------------

    def playlist(self, channel_id: str) -> str | None:
        """The channel's media playlist, or None if it is not live or has no segment yet."""
        live = self._live.get(channel_id)
        return live.playlist.render() if live else None

    def segment(self, channel_id: str, sequence: int) -> bytes | None:
        """One retained segment of a live channel, as a player downloads it."""
        live = self._live.get(channel_id)
        segment = live.playlist.segment(sequence) if live else None
        return segment.data if segment else None

    async def wait_playable(self, channel_id: str) -> bool:
        """Wait for a live channel's first segment; False at once if the channel is not live."""
        live = self._live.get(channel_id)
        if live is None:
            return False
        await live.ready.wait()
        return self._live.get(channel_id) is live

    def channel(self, channel_id: str) -> ChannelPlaylist | None:
        """The live channel's playlist object (for tests and debugging)."""
        live = self._live.get(channel_id)
        return live.playlist if live else None

    # -- streams and metadata ---------------------------------------------------------------

    def _stream_changed(self, channel_arn: str, live: bool) -> None:
        channel_id = channel_arn.rsplit("/", 1)[-1]
        if live and channel_id not in self._live:
            self._add(channel_id, channel_arn)
        elif not live and channel_id in self._live:
            self._drop(channel_id)
        self._write_names()
        self._changed.set()

    def _add(self, channel_id: str, channel_arn: str) -> None:
        playlist = ChannelPlaylist(channel_id)
        unsubscribe = self._state.subscribe(channel_arn, self._offer_to(playlist))
        live = _Live(channel_arn, playlist, unsubscribe)
        # The picture is shared, so a channel that goes live starts with the last few
        # segments already encoded (without metadata) and is playable at once.
        for sequence, encoded in self._recent:
            playlist.add(sequence, encoded)
        if self._recent:
            live.ready.set()
        self._live[channel_id] = live
        logger.info("playback of %s started", channel_arn)

    def _drop(self, channel_id: str) -> None:
        live = self._live.pop(channel_id)
        live.unsubscribe()
        logger.info("playback of %s stopped", live.arn)

    @staticmethod
    def _offer_to(playlist: ChannelPlaylist) -> Callable[[MetadataEvent], None]:
        def offer(event: MetadataEvent) -> None:
            playlist.offer(event.metadata)

        return offer

    def _on_segment(self, encoded: EncodedSegment) -> None:
        sequence = self._sequence
        self._sequence += 1
        discontinuity, self._restarted = self._restarted, False
        self._recent.append((sequence, encoded))
        for live in self._live.values():
            live.playlist.add(sequence, encoded, discontinuity=discontinuity)
            live.ready.set()

    def _write_names(self) -> None:
        if self._workdir is None:
            return
        names = []
        for channel_id, live in self._live.items():
            try:
                name = self._state.get_channel(live.arn)["channel"]["name"]
            except IvsError:  # a channel that vanished between calls; its id will do
                name = ""
            names.append(name or channel_id)
        shown = ", ".join(names[:NAMES_SHOWN])
        if len(names) > NAMES_SHOWN:
            shown += f" +{len(names) - NAMES_SHOWN}"
        path = Path(self._workdir.name) / "names.txt"
        spare = path.with_suffix(".tmp")
        spare.write_text(shown or "local IVS")
        # ffmpeg re-reads the file every frame: replace it whole, never rewrite it in place.
        os.replace(spare, path)

    # -- the encoder ------------------------------------------------------------------------

    async def _until(self, wanted: Callable[[], bool]) -> None:
        while not wanted():
            self._changed.clear()
            await self._changed.wait()

    async def _supervise(self) -> None:
        delay = RESTART_DELAY
        while True:
            await self._until(lambda: bool(self._live))
            started = time.monotonic()
            outcome = await self._run_encoder()
            if not self._live:
                # Nobody watches: the next run starts fresh, with nothing stale to pre-seed.
                self._recent.clear()
                self._restarted = False
                delay = RESTART_DELAY
                continue
            if time.monotonic() - started > RESTART_DELAY_MAX:
                delay = RESTART_DELAY  # it ran well for a while: not a crash loop
            logger.error("ffmpeg %s while channels were live; restarting in %.0f s", outcome, delay)
            self._restarted = True
            await asyncio.sleep(delay)
            delay = min(2 * delay, RESTART_DELAY_MAX)

    async def _run_encoder(self) -> str:
        """Run ffmpeg until it exits or no channel is live; say how it ended."""
        assert self._workdir is not None
        names = Path(self._workdir.name) / "names.txt"
        self._encoder = encoder = Encoder(self._command(self._ffmpeg, names), self._on_segment)
        self.encoder_runs += 1
        run = asyncio.create_task(encoder.run(), name="local-ivs-ffmpeg")
        run.add_done_callback(lambda _: self._changed.set())
        try:
            await self._until(lambda: run.done() or not self._live)
        finally:
            await encoder.stop()
            self._encoder = None
            # ffmpeg has exited, so its output ends and the run with it: wait for that even on
            # the way out, so no task outlives playback.
            await asyncio.wait({run}, timeout=STOP_TIMEOUT)
        if not run.done():
            run.cancel()
            return "did not finish after it was stopped"
        error = run.exception()
        if error is not None:
            return f"could not run ({error!r})"
        tail = " | ".join(encoder.stderr_tail) or "no output"
        return f"exited with status {run.result()} ({tail})"
