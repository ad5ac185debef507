"""The stream's book-keeping, with no socket and no clock of its own: which frames wait for an
ack, which acknowledged cues wait for a receipt, and what to write (again) on a connection.
The I/O shell (`stream.py`) feeds it messages and times and carries out the effects it returns.
It follows `clients/js/ledger.js` rule for rule."""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from metadata_gateway.client.errors import GatewayError
from metadata_gateway.client.frames import CueKey, Frame, chunks
from metadata_gateway.client.results import Cancelled, CueResult, Receipt
from metadata_gateway.client.retry import RetryPolicy

DEFAULT_MAX_FRAME_BYTES = 256 * 1024  # the gateway's default max_body_bytes
MESSAGE_TOO_BIG = 1009  # the close code for a frame far over the gateway's limit
RETRYABLE_CODES = frozenset({"queue_full", "client_rate_limited", "shutting_down"})


@dataclass(frozen=True, slots=True)
class Resolve:
    """The ack of `frame` arrived: its waiter gets `value`."""

    frame: Frame
    value: Any


@dataclass(frozen=True, slots=True)
class Reject:
    """The frame was refused for good: its waiter gets `error`."""

    frame: Frame
    error: GatewayError


@dataclass(frozen=True, slots=True)
class Emit:
    """A receipt for the stream's reader."""

    receipt: Receipt


@dataclass(frozen=True, slots=True)
class Warn:
    """Something for the log."""

    message: str
    extra: dict[str, Any]


Effect = Resolve | Reject | Emit | Warn


class StreamLedger:
    """Frames until their ack, acknowledged cues until their receipt, and what to resend."""

    def __init__(
        self,
        *,
        retry: RetryPolicy,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.retry = retry
        self._rand = rand
        self.max_frame_bytes = max_frame_bytes
        self.frames: dict[int, Frame] = {}  # in the order they are to be written
        self.unreceipted: dict[CueKey, dict[str, Any]] = {}
        self.answers: deque[int] = deque()  # refs written on this connection, unanswered
        self.generation = 0
        self.hold_until = 0.0  # the gateway is shutting down: write nothing before this
        self.resent = 0
        self._refs = itertools.count(1)

    def __repr__(self) -> str:
        return (
            f"<StreamLedger frames={len(self.frames)} unreceipted={len(self.unreceipted)} "
            f"generation={self.generation} resent={self.resent}>"
        )

    @property
    def unsettled(self) -> int:
        """Cues sent that have no ack or no receipt yet."""
        return sum(len(f.cues) for f in self.frames.values()) + len(self.unreceipted)

    @property
    def settled(self) -> bool:
        """Whether every cue sent has its ack and its receipt, and every cancel its answer."""
        return not self.frames and not self.unreceipted

    def next_ref(self) -> int:
        """The ref of the next frame."""
        return next(self._refs)

    def add(self, frame: Frame) -> None:
        """Queue a frame for writing; raise `body_too_large` for one over the frame limit."""
        if len(frame.data) > self.max_frame_bytes:
            raise GatewayError(
                413,
                "body_too_large",
                f"the frame takes {len(frame.data)} bytes, over {self.max_frame_bytes}",
            )
        self.frames[frame.ref] = frame

    def abandon(self, frame: Frame) -> None:
        """Its waiter stopped waiting: forget the frame unless it may be queued already."""
        if self.frames.get(frame.ref) is not frame:
            return
        if frame.written:  # it may be queued: keep it so that its receipt is followed
            frame.future = None
        else:
            del self.frames[frame.ref]

    def connected(self, now: float) -> int:
        """A new connection is open: acknowledged cues whose receipts were lost go first, again;
        return how many."""
        self.generation += 1
        self.answers.clear()
        self.hold_until = 0.0
        if not self.unreceipted:
            return 0
        items = list(self.unreceipted.items())
        self.unreceipted.clear()
        frames: dict[int, Frame] = {}
        for chunk in chunks(items, self.max_frame_bytes // 2):
            ref = self.next_ref()
            cues, keys = [cue for _, cue in chunk], [key for key, _ in chunk]
            frames[ref] = Frame.build(ref, cues, single=False, started=now, future=None, keys=keys)
        self.frames = {**frames, **self.frames}
        self.resent += len(items)
        return len(items)

    def due(self, now: float) -> tuple[list[Frame], float]:
        """The frames to write now on this connection, in order (each marked written), and
        when to ask again (inf: when something new is queued)."""
        if now < self.hold_until:
            return [], self.hold_until
        frames: list[Frame] = []
        wake_at = float("inf")
        for frame in self.frames.values():
            if frame.written == self.generation:
                continue
            if frame.not_before > now:
                wake_at = min(wake_at, frame.not_before)
                continue
            frame.written = self.generation
            self.answers.append(frame.ref)
            frames.append(frame)
        return frames, wake_at

    def handle(self, text: str | bytes, now: float) -> list[Effect]:
        """One text message from the gateway: an ack, a nack or a receipt."""
        try:
            message = orjson.loads(text)
            op = message.get("op")
            if op == "ack":
                return self._on_ack(message)
            if op == "nack":
                return self._on_nack(message, now)
            if op in ("sent", "dropped"):
                return self._on_receipt(Receipt.from_json(message))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            return [Warn("unexpected message from the gateway", {"error": repr(exc)})]
        return []

    def closed(self, close_code: int | None) -> list[Effect]:
        """The connection closed: a frame far too large must not close the next one too."""
        if close_code != MESSAGE_TOO_BIG or not self.answers:
            return []
        frame = self.frames.get(self.answers[0])
        if frame is None:
            return []
        return self._fail(frame, GatewayError(413, "body_too_large", "the frame is too large"))

    def end(self, error: GatewayError) -> list[Effect]:
        """The stream ended: every waiter fails with `error`."""
        effects: list[Effect] = [Reject(f, error) for f in self.frames.values() if f.future]
        self.frames.clear()
        return effects

    def _answered(self, ref: object) -> Frame | None:
        """The frame an ack or nack answers; one with no ref answers the oldest unanswered."""
        if ref is None:  # a frame the gateway could not parse (too large): answers are in order
            ref = self.answers[0] if self.answers else None
        if isinstance(ref, int) and ref in self.answers:
            self.answers.remove(ref)
        frame = self.frames.get(ref) if isinstance(ref, int) else None
        if frame is None or frame.written != self.generation:
            return None
        return frame

    def _on_ack(self, message: dict[str, Any]) -> list[Effect]:
        frame = self._answered(message.get("ref"))
        if frame is None:
            return []
        if frame.cancels:
            return self._on_cancel_ack(frame, message)
        try:
            results = [CueResult.from_json(entry) for entry in message["cues"]]
        except (AttributeError, KeyError, TypeError) as exc:
            return self._fail(frame, _invalid(exc))
        del self.frames[frame.ref]
        delivered: dict[str, list[str]] = {}
        for cue, result in zip(frame.cues, results, strict=False):
            if result.status == "queued" or result.delivered is False:
                self.unreceipted[(result.channel, result.id)] = cue
            elif result.delivered:
                delivered.setdefault(result.channel, []).append(result.id)
        effects: list[Effect] = [
            Emit(Receipt("sent", channel, tuple(ids), at=None))
            for channel, ids in delivered.items()
        ]
        if frame.future is not None:
            effects.append(Resolve(frame, results))
        return effects

    def _on_cancel_ack(self, frame: Frame, message: dict[str, Any]) -> list[Effect]:
        try:
            result = Cancelled.from_json(message["cues"][0])
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            return self._fail(frame, _invalid(exc))
        del self.frames[frame.ref]
        effects: list[Effect] = []
        # A cue of an earlier connection has no subscription for its `dropped` receipt: make it.
        if self.unreceipted.pop((result.channel, result.id), None) is not None:
            effects.append(
                Emit(Receipt("dropped", result.channel, (result.id,), reason="cancelled"))
            )
        if frame.future is not None:
            effects.append(Resolve(frame, result))
        return effects

    def _on_nack(self, message: dict[str, Any], now: float) -> list[Effect]:
        error = GatewayError.from_error(None, message.get("error"))
        frame = self._answered(message.get("ref"))
        if frame is None:
            return [Warn("nack for no known frame", {"code": error.code})]
        wait = None
        if error.code in RETRYABLE_CODES:
            wait = self.retry.wait(
                frame.retries,
                started=frame.started,
                now=now,
                retry_after=error.retry_after,
                rand=self._rand,
            )
        if wait is None:
            return self._fail(frame, error)
        frame.retries += 1
        frame.written = 0
        if error.code == "shutting_down":
            # The connection is about to close: the next one gets the frame, unless it lasts.
            self.hold_until = max(self.hold_until, now + wait)
        else:
            frame.not_before = now + wait
        return []

    def _fail(self, frame: Frame, error: GatewayError) -> list[Effect]:
        del self.frames[frame.ref]
        if frame.future is not None:
            return [Reject(frame, error)]
        by_channel: dict[str, list[str]] = {}
        for channel, cue_id in frame.keys or ():
            by_channel.setdefault(channel, []).append(cue_id)
        # A re-send refused: those cues are lost.
        effects: list[Effect] = [
            Emit(Receipt("dropped", channel, tuple(ids), reason=error.code))
            for channel, ids in by_channel.items()
        ]
        effects.append(Warn("cues not re-sent", {"code": error.code, "cues": len(frame.cues)}))
        return effects

    def _on_receipt(self, receipt: Receipt) -> list[Effect]:
        if receipt.op == "dropped" and receipt.reason == "shutdown":
            # The process gave up on them only because it is stopping: they stay unreceipted
            # and go, with the same ids, to whichever gateway the stream reaches next.
            return []
        for cue_id in receipt.ids:
            self.unreceipted.pop((receipt.channel, cue_id), None)
        return [Emit(receipt)]


def _invalid(exc: Exception) -> GatewayError:
    return GatewayError(0, "invalid_response", f"unexpected ack: {exc!r}")
