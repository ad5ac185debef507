"""IVS Stream State Change events, shaped as EventBridge delivers them, sent to an SQS queue.

In AWS an EventBridge rule forwards IVS's events to a queue; here the local IVS sends the same
envelope (`source` aws.ivs, `detail-type`, `resources`, `detail.event_name`, ...) to the queue
itself. Like IVS's, delivery is best effort: an event SQS refuses is logged and not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiobotocore.session import AioSession, get_session

from metadata_gateway.local_ivs.sessions import STATE_CHANGE, SessionEvent, StreamSession

logger = logging.getLogger(__name__)

MAX_WAITING_EVENTS = 10_000  # events not yet sent; beyond this the oldest are dropped
CLOSE_GRACE_S = 2.0  # at close, events still waiting get this long to go out
SEND_TIMEOUT_S = 5.0


def eventbridge_time(unix_seconds: float) -> str:
    """An EventBridge envelope's `time`: UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(unix_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stream_state_change(
    session: StreamSession, event: SessionEvent, *, region: str, event_id: str | None = None
) -> dict[str, Any]:
    """The EventBridge event IVS sends for `event` of `session`."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": STATE_CHANGE,
        "source": "aws.ivs",
        "account": session.channel_arn.split(":")[4],
        "time": eventbridge_time(event.time),
        "region": region,
        "resources": [session.channel_arn],
        "detail": {
            "event_name": event.name,
            "channel_name": session.channel.get("name", ""),
            "stream_id": session.stream_id,
        },
    }


class EventPublisher:
    """Sends each session event to `queue_url` from one owned task, in the order they happened."""

    def __init__(
        self,
        *,
        queue_url: str,
        region: str,
        endpoint_url: str | None = None,
        session: AioSession | None = None,
    ) -> None:
        self._queue_url = queue_url
        self._region = region
        self._endpoint_url = endpoint_url
        self._session = session or get_session()
        self._waiting: asyncio.Queue[bytes] = asyncio.Queue()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:
        return (
            f"<EventPublisher {self._queue_url} waiting={self._waiting.qsize()} "
            f"sent={self.sent} failed={self.failed}>"
        )

    async def start(self) -> None:
        """Open the SQS client and start the sending task."""
        kwargs: dict[str, Any] = {"region_name": self._region}
        if self._endpoint_url:
            kwargs["endpoint_url"] = self._endpoint_url
        client = await self._stack.enter_async_context(self._session.create_client("sqs", **kwargs))
        self._task = asyncio.create_task(self._run(client), name="local-ivs-eventbridge")

    def publish(self, session: StreamSession, event: SessionEvent) -> None:
        """Queue one event for sending (a `SessionBook` listener)."""
        if self._waiting.qsize() >= MAX_WAITING_EVENTS:
            self._waiting.get_nowait()
            self.failed += 1
            logger.warning("dropped the oldest unsent stream event: the queue is not keeping up")
        body = stream_state_change(session, event, region=self._region)
        self._waiting.put_nowait(orjson.dumps(body))

    async def close(self) -> None:
        """Send what is waiting for up to `CLOSE_GRACE_S`, then stop and close the client."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self._waiting.join()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._waiting.qsize():
                logger.warning("stream events not sent at close: %d", self._waiting.qsize())
        await self._stack.aclose()

    async def _run(self, client: Any) -> None:
        while True:
            body = await self._waiting.get()
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await client.send_message(QueueUrl=self._queue_url, MessageBody=body.decode())
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed += 1
                logger.warning("could not send a stream event to %s: %s", self._queue_url, exc)
            finally:
                self._waiting.task_done()
