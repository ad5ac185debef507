"""Live HLS for the local IVS: one ffmpeg test pattern, each channel's metadata as timed ID3.

docs/viewer.md describes the stream; `ts`, `id3`, `splitter` and `playlist` are pure byte and
text work, `encoder` and `manager` run ffmpeg with asyncio, and only `routes` imports aiohttp.
"""

from metadata_gateway.local_ivs.playback.encoder import PlaybackUnavailable
from metadata_gateway.local_ivs.playback.manager import Playback

__all__ = ["Playback", "PlaybackUnavailable"]
