"""The SQS consumer of IVS stream events: long-polls the queue an EventBridge rule fills, hands
each event to `StreamSessions`, and deletes a message only once it was handled.

One owned task; `close` cancels it (a message received but not yet handled is not deleted, so
SQS delivers it again after its visibility timeout, which the event order makes harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from prometheus_client import CollectorRegistry, Counter, Histogram

from metadata_gateway.core.stream_sessions import StreamSessions
from metadata_gateway.core.stream_state import EventSkipped, SkipReason, parse_event
from metadata_gateway.running.tasks import TaskRegistry

log = logging.getLogger(__name__)

WAIT_TIME_S = 20  # SQS's longest long poll: one request per 20 s while nothing happens
MAX_MESSAGES = 10  # SQS's most per receive
RETRY_MIN_S, RETRY_MAX_S = 0.5, 30.0  # back-off while the queue cannot be read
_NS = "metadata_gateway"
_QUEUE_REGION = re.compile(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com")


def queue_region(queue_url: str, default: str) -> str:
    """The region an SQS queue URL names (`https://sqs.<region>.amazonaws.com/...`)."""
    match = _QUEUE_REGION.match(queue_url)
    return match.group(1) if match else default


class EventMetrics:
    """Counters of stream events, in the gateway's registry; the skip reasons are a fixed set."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry or CollectorRegistry()
        self.received = Counter(
            f"{_NS}_stream_events_received", "IVS stream events read from the queue.", registry=r
        )
        self.used = Counter(
            f"{_NS}_stream_events_used", "Stream events that changed a channel.", registry=r
        )
        self.skipped = Counter(
            f"{_NS}_stream_events_skipped",
            "Stream events that changed nothing, by reason.",
            ["reason"],
            registry=r,
        )
        self.lag = Histogram(
            f"{_NS}_stream_event_lag_seconds",
            "From an event's time (whole seconds) to the gateway reading it.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        for reason in SkipReason:
            self.skipped.labels(reason.value)


class StreamEventsConsumer:
    """Reads IVS stream events from one SQS queue into `StreamSessions`."""

    def __init__(
        self,
        sessions: StreamSessions,
        *,
        tasks: TaskRegistry,
        queue_url: str,
        region: str,
        now: Callable[[], float],
        endpoint_url: str | None = None,
        registry: CollectorRegistry | None = None,
        wall_clock: Callable[[], float] = time.time,
        session: AioSession | None = None,
    ) -> None:
        self._sessions = sessions
        self._tasks = tasks
        self._queue_url = queue_url
        self._region = queue_region(queue_url, region)
        self._endpoint_url = endpoint_url
        self._now = now
        self._wall_clock = wall_clock
        self._session = session or get_session()
        self.metrics = EventMetrics(registry)
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        running = self._task is not None and not self._task.done()
        return f"<StreamEventsConsumer {self._queue_url} running={running}>"

    async def start(self) -> None:
        """Open the SQS client and start reading."""
        kwargs: dict[str, Any] = {
            "region_name": self._region,
            # A read timeout beyond the long poll, so a quiet queue is not a timeout.
            "config": AioConfig(read_timeout=WAIT_TIME_S + 10, retries={"mode": "standard"}),
        }
        if self._endpoint_url:
            kwargs["endpoint_url"] = self._endpoint_url
        client = await self._stack.enter_async_context(self._session.create_client("sqs", **kwargs))
        self._task = self._tasks.spawn(self._run(client), name="stream-events")

    async def close(self) -> None:
        """Stop reading (a receive in progress is abandoned) and close the client."""
        task, self._task = self._task, None
        await self._tasks.cancel(task)
        await self._stack.aclose()

    async def _run(self, client: Any) -> None:
        failures = 0
        while True:
            try:
                answer = await client.receive_message(
                    QueueUrl=self._queue_url,
                    WaitTimeSeconds=WAIT_TIME_S,
                    MaxNumberOfMessages=MAX_MESSAGES,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                wait = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (failures - 1))
                log.warning(
                    "cannot read the stream events queue",
                    extra={"queue": self._queue_url, "detail": str(exc), "retry_in_s": wait},
                )
                await asyncio.sleep(wait)
                continue
            failures = 0
            self._sessions.queue_answered(self._now())
            handled = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(answer.get("Messages", []))
                if self.handle(message.get("Body", ""))
            ]
            if handled:
                await self._delete(client, handled)

    def handle(self, body: str) -> bool:
        """Act on one message body; return whether it was handled (and may be deleted)."""
        self.metrics.received.inc()
        try:
            event = parse_event(body)
            self.metrics.lag.observe(max(0.0, self._wall_clock() - event.time))
            self._sessions.apply(event, self._now())
        except EventSkipped as skipped:
            self.metrics.skipped.labels(skipped.reason.value).inc()
            if skipped.reason is SkipReason.MALFORMED:
                log.warning("skipped a malformed stream event", extra={"detail": str(skipped)})
            return True
        except Exception:
            # A bug, not the event's fault: keep the message, SQS offers it again later.
            log.exception("failed handling a stream event")
            return False
        self.metrics.used.inc()
        return True

    async def _delete(self, client: Any, entries: list[dict[str, str]]) -> None:
        try:
            answer = await client.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not deleted: delivered again later, and skipped then as a duplicate or stale.
            log.warning("cannot delete handled stream events", extra={"detail": str(exc)})
            return
        for failed in answer.get("Failed", []):
            log.warning("SQS kept a handled stream event", extra={"detail": failed.get("Message")})
