"""Delivery receipts: which connection wants to hear what became of which cue."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, Pending


class ReceiptSubscriber(Protocol):
    """A connection that submitted cues and wants `sent` / `dropped` messages for them."""

    def deliver(self, message: dict[str, Any]) -> None:
        """Queue one receipt for sending; must not block."""

    def settled(self, channel: str, cue_id: str) -> None:
        """The cue left the gateway (sent or dropped): it no longer counts as in flight."""


class ReceiptRouter:
    """A `DeliveryListener` that turns cue outcomes into receipts for their submitters."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._waiting: dict[tuple[str, str], list[ReceiptSubscriber]] = {}

    def __repr__(self) -> str:
        return f"<ReceiptRouter waiting={len(self._waiting)}>"

    def __len__(self) -> int:
        return len(self._waiting)

    def subscribe(self, channel: str, cue_id: str, subscriber: ReceiptSubscriber) -> None:
        """Send `subscriber` the receipt of this cue."""
        subscribers = self._waiting.setdefault((channel, cue_id), [])
        if subscriber not in subscribers:
            subscribers.append(subscriber)

    def unsubscribe_all(
        self, subscriber: ReceiptSubscriber, keys: Sequence[tuple[str, str]]
    ) -> None:
        """Forget a closed connection's subscriptions."""
        for key in keys:
            subscribers = self._waiting.get(key)
            if subscribers and subscriber in subscribers:
                subscribers.remove(subscriber)
                if not subscribers:
                    del self._waiting[key]

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        """Tell each submitter which of its cues this call carried, and when IVS answered."""
        at = round(self._wall_clock(), 6)
        self._notify(channel, cues, {"op": "sent", "channel": channel, "at": at})

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """Tell each submitter which of its cues were dropped, and why."""
        self._notify(channel, cues, {"op": "dropped", "channel": channel, "reason": reason.value})

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        """Calls themselves are not receipted."""

    def relay(self, message: dict[str, Any]) -> list[str]:
        """Route a `sent` or `dropped` receipt another process produced (its `ids` listed);
        return the ids nobody here waits for."""
        channel, ids = message.get("channel"), message.get("ids")
        if not isinstance(channel, str) or not isinstance(ids, list):
            return []
        base = {k: v for k, v in message.items() if k != "ids"}
        return self._notify_ids(channel, [i for i in ids if isinstance(i, str)], base)

    def _notify(self, channel: str, cues: Sequence[Pending], base: dict[str, Any]) -> None:
        self._notify_ids(channel, [pending.cue.id for pending in cues], base)

    def _notify_ids(self, channel: str, cue_ids: Sequence[str], base: dict[str, Any]) -> list[str]:
        groups: dict[int, tuple[ReceiptSubscriber, list[str]]] = {}
        unknown: list[str] = []
        for cue_id in cue_ids:
            subscribers = self._waiting.pop((channel, cue_id), None)
            if not subscribers:
                unknown.append(cue_id)
            for subscriber in subscribers or ():
                groups.setdefault(id(subscriber), (subscriber, []))[1].append(cue_id)
        for subscriber, ids in groups.values():
            for cue_id in ids:
                subscriber.settled(channel, cue_id)
            subscriber.deliver({**base, "ids": ids})
        return unknown
