"""Random identifiers shaped like the ones IVS hands out (resource ids, stream ids, key values)."""

from __future__ import annotations

import random
import string

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits
RESOURCE_ID_LENGTH = 12  # channel/ABCDefgh1234, stream-key/..., as IVS's ARNs show
STREAM_KEY_SECRET_LENGTH = 36
STREAM_ID_LENGTH = 26  # StreamId shape: min = max = 26, "st-" plus 23 characters
SRT_PASSPHRASE_LENGTH = 32


class IdFactory:
    """Draws identifiers from one `random.Random`, so a seeded generator gives repeatable ids."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __repr__(self) -> str:
        return "<IdFactory>"

    def _draw(self, alphabet: str, length: int) -> str:
        return "".join(self._rng.choices(alphabet, k=length))

    def resource_id(self) -> str:
        """Return the id part of a channel or stream key ARN."""
        return self._draw(_ALNUM, RESOURCE_ID_LENGTH)

    def stream_key_value(self, region: str) -> str:
        """Return a stream key secret, `sk_<region>_<36 characters>`."""
        return f"sk_{region}_{self._draw(_ALNUM, STREAM_KEY_SECRET_LENGTH)}"

    def ingest_host_prefix(self) -> str:
        """Return the per-channel host label of `<label>.global-contribute.live-video.net`."""
        return self._draw(_LOWER_ALNUM, RESOURCE_ID_LENGTH)

    def stream_id(self) -> str:
        """Return a stream session id, `st-` plus 23 characters."""
        return "st-" + self._draw(_ALNUM, STREAM_ID_LENGTH - 3)

    def srt_passphrase(self) -> str:
        """Return an SRT ingest passphrase."""
        return self._draw(_ALNUM, SRT_PASSPHRASE_LENGTH)
