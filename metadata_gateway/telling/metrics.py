"""Prometheus metrics: bounded labels only (10k channels as labels would be ~200k series)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from metadata_gateway.core.events import DropReason
from metadata_gateway.core.ivs import Outcome
from metadata_gateway.core.pending import Batch, Pending

CONTENT_TYPE = CONTENT_TYPE_LATEST
if TYPE_CHECKING:  # only read through: the metrics need not load the core
    from metadata_gateway.core.gateway import Gateway

_NS = "metadata_gateway"


class Metrics:
    """The gateway's metrics in their own registry; also a `DeliveryListener`."""

    def __init__(self, gateway: Gateway, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            f"{_NS}_cues_received",
            "Valid cues answered 202 (queued or duplicate).",
            ["type"],
            registry=r,
        )
        self.duplicates = Counter(
            f"{_NS}_cues_duplicate", "Cues answered duplicate by their idempotency id.", registry=r
        )
        self.rejected = Counter(
            f"{_NS}_cues_rejected",
            "Cues refused at the door, by error code.",
            ["reason"],
            registry=r,
        )
        self.delivered = Counter(
            f"{_NS}_cues_delivered",
            "Cues in a PutMetadata that IVS accepted.",
            ["type"],
            registry=r,
        )
        self.dropped = Counter(
            f"{_NS}_cues_dropped",
            "Accepted cues that were never delivered.",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            f"{_NS}_put_metadata_requests",
            "PutMetadata calls, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.payload_bytes = Histogram(
            f"{_NS}_put_metadata_payload_bytes",
            "Bytes of each PutMetadata payload (IVS allows 1024).",
            buckets=(64, 128, 256, 512, 768, 896, 960, 1000, 1024),
            registry=r,
        )
        self.cues_per_request = Histogram(
            f"{_NS}_cues_per_request",
            "Cues carried by each PutMetadata call.",
            buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89),
            registry=r,
        )
        self.delivery_seconds = Histogram(
            f"{_NS}_cue_delivery_seconds",
            "From accepting a cue to IVS's 2xx for the call that carried it.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.request_seconds = Histogram(
            f"{_NS}_put_metadata_duration_seconds",
            "Duration of each PutMetadata call.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.state_resends = Counter(
            f"{_NS}_state_resends", "State cues re-sent to late joiners.", registry=r
        )
        self.schedule_lag = Histogram(
            f"{_NS}_schedule_lag_seconds",
            "From a scheduled cue's not_before to IVS accepting it.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5),
            registry=r,
        )
        scheduled = Gauge(f"{_NS}_cues_scheduled", "Cues held until their not_before.", registry=r)
        scheduled.set_function(
            lambda: sum(len(c.queue) - c.queue.waiting for c in gateway.channels.values())
        )
        queued = Gauge(
            f"{_NS}_queued_cues", "Cues accepted and not yet sent or dropped.", registry=r
        )
        queued.set_function(lambda: gateway.total_cues)
        queued_bytes = Gauge(f"{_NS}_queued_bytes", "Bytes of the queued cues.", registry=r)
        queued_bytes.set_function(lambda: gateway.total_bytes)
        active = Gauge(
            f"{_NS}_channels_active", "Channels with cues waiting or in flight.", registry=r
        )
        active.set_function(lambda: sum(1 for c in gateway.channels.values() if len(c.queue)))
        known = Gauge(f"{_NS}_channels_known", "Channels the gateway has seen.", registry=r)
        known.set_function(lambda: len(gateway.channels))
        offline = Gauge(
            f"{_NS}_channels_offline", "Channels IVS last said are not broadcasting.", registry=r
        )
        offline.set_function(lambda: sum(1 for c in gateway.channels.values() if c.live is False))
        self.account_calls = Gauge(
            f"{_NS}_account_budget_calls",
            "PutMetadata calls that count against the busiest account budget right now.",
            registry=r,
        )
        self.account_calls.set_function(
            lambda: max(
                (s.limiter.recent_calls(gateway.now()) for s in gateway.schedulers.values()),
                default=0,
            )
        )
        # Process memory and CPU, in this registry since it is not the global one.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        for name, value, unit in (
            ("queue_limit_cues", gateway.settings.total_max_cues, "cues"),
            ("queue_limit_bytes", gateway.settings.total_max_bytes, "bytes"),
        ):
            bound = Gauge(f"{_NS}_{name}", f"The process-wide queue bound in {unit}.", registry=r)
            bound.set(value)
        limit = Gauge(
            f"{_NS}_account_budget_limit", "Calls per second allowed per account.", registry=r
        )
        limit.set(gateway.settings.account_rate)
        self.draining = Gauge(
            f"{_NS}_draining", "1 while the gateway drains for shutdown.", registry=r
        )
        self.draining.set_function(lambda: int(gateway.draining))
        self.ws_connections = Gauge(f"{_NS}_ws_connections", "Open WebSocket sessions.", registry=r)
        self.ws_messages = Counter(
            f"{_NS}_ws_messages",
            "WebSocket frames, by direction (in, out).",
            ["direction"],
            registry=r,
        )
        self.ws_disconnects = Counter(
            f"{_NS}_ws_disconnects", "WebSocket sessions ended, by reason.", ["reason"], registry=r
        )
        # Children looked up once: `labels()` costs more than the increment, on every frame.
        self.ws_in = self.ws_messages.labels("in")
        self.ws_out = self.ws_messages.labels("out")
        self._received_by_type: dict[str, Any] = {}
        for outcome in Outcome:
            self.requests.labels(outcome.value)
        for reason in DropReason:
            self.dropped.labels(reason.value)

    def count_received(self, cue_type: str) -> None:
        """One more cue answered 202 (queued or duplicate), by type."""
        child = self._received_by_type.get(cue_type)
        if child is None:
            child = self._received_by_type[cue_type] = self.received.labels(cue_type)
        child.inc()

    def watch_replica(
        self,
        *,
        partitions: int,
        owned: Callable[[], int],
        handovers: Callable[[], int],
        lease_losses: Callable[[], int],
        redis_errors: Callable[[], Mapping[str, int]],
        operations: Iterable[str],
    ) -> None:
        """Export a distributed replica's ownership and Redis figures (no per-channel labels)."""
        r = self.registry
        total = Gauge(
            f"{_NS}_partitions", "Partitions the deployment's cues are spread over.", registry=r
        )
        total.set(partitions)
        mine = Gauge(
            f"{_NS}_partitions_owned", "Partitions this replica sends for now.", registry=r
        )
        mine.set_function(owned)
        self.redis_seconds = Histogram(
            f"{_NS}_redis_round_trip_seconds",
            "Duration of this replica's Redis calls, by operation.",
            ["op"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 3),
            registry=r,
        )
        ops = tuple(operations)
        for op in ops:
            self.redis_seconds.labels(op)
        r.register(_ReplicaCounters(handovers, lease_losses, redis_errors, ops))

    def redis_round_trip(self, operation: str, seconds: float) -> None:
        """Observe one Redis call's duration."""
        self.redis_seconds.labels(operation).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def cues_sent(self, channel: str, cues: Sequence[Pending], now: float) -> None:
        """Count delivered cues and their accept-to-delivery time."""
        for pending in cues:
            self.delivered.labels(pending.cue.type).inc()
            self.delivery_seconds.observe(now - pending.accepted_at)
            if pending.cue.not_before is not None:
                self.schedule_lag.observe(max(0.0, now - pending.release_at))

    def cues_dropped(
        self, channel: str, cues: Sequence[Pending], reason: DropReason, now: float
    ) -> None:
        """Count dropped cues by reason."""
        self.dropped.labels(reason.value).inc(len(cues))

    def call_finished(self, batch: Batch, outcome: Outcome, duration: float) -> None:
        """Count the call and observe its size and duration."""
        self.requests.labels(outcome.value).inc()
        if outcome is Outcome.OK and batch.repeats:
            self.state_resends.inc(len(batch.repeats))
        self.request_seconds.observe(duration)
        self.payload_bytes.observe(len(batch.payload))
        self.cues_per_request.observe(len(batch.cues))


class _ReplicaCounters(Collector):
    """Counters a distributed replica keeps as plain numbers, read at each scrape."""

    def __init__(
        self,
        handovers: Callable[[], int],
        lease_losses: Callable[[], int],
        redis_errors: Callable[[], Mapping[str, int]],
        operations: Sequence[str],
    ) -> None:
        self._handovers = handovers
        self._lease_losses = lease_losses
        self._redis_errors = redis_errors
        self._operations = operations

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            f"{_NS}_partition_handovers",
            "Partitions this replica stopped sending for (moved, released or lost).",
            value=self._handovers(),
        )
        yield CounterMetricFamily(
            f"{_NS}_lease_losses",
            "Partition leases this replica found taken or expired when renewing.",
            value=self._lease_losses(),
        )
        errors = CounterMetricFamily(
            f"{_NS}_redis_errors", "Redis calls that failed, by operation.", labels=["op"]
        )
        counts = self._redis_errors()
        for op in self._operations:
            errors.add_metric([op], counts.get(op, 0))
        yield errors
