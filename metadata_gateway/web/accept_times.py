"""When the gateway accepted each sent cue, so the demo viewer can show the delay to the screen."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, Pending

# Cues whose accept time is kept, the oldest forgotten first: at IVS's 155 calls/s per account
# this covers over a minute of full payloads, far more than the few seconds to a viewer.
MAX_REMEMBERED = 10_000


class AcceptTimes:
    """A DeliveryListener keeping the wall-clock accept time (Unix ms) of recently sent cues."""

    __slots__ = ("_times", "_wall_clock")

    def __init__(self, *, wall_clock: Callable[[], float]) -> None:
        self._wall_clock = wall_clock
        self._times: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __repr__(self) -> str:
        return f"<AcceptTimes remembered={len(self._times)}/{MAX_REMEMBERED}>"

    def __len__(self) -> int:
        return len(self._times)

    def lookup(self, channel: str, ids: Iterable[str]) -> dict[str, int]:
        """The accept times (Unix ms) of those of `ids` sent on `channel` and still remembered."""
        found = {}
        for cue_id in ids:
            at = self._times.get((channel, cue_id))
            if at is not None:
                found[cue_id] = at
        return found

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        """Remember when each cue was accepted, converted from the gateway's clock to wall time."""
        # `now` and `accepted_at` are both on the gateway's (monotonic) clock.
        offset = self._wall_clock() - now
        for pending in cues:
            key = (channel, pending.cue.id)
            # A state cue's repeats keep their first accept time.
            if key not in self._times:
                self._times[key] = round((pending.accepted_at + offset) * 1000)
        while len(self._times) > MAX_REMEMBERED:
            self._times.popitem(last=False)

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """Dropped cues never reach a viewer."""

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        """Calls themselves are not needed."""
