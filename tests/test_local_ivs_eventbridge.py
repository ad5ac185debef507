"""The local IVS sends IVS Stream State Change events, as EventBridge shapes them, to a real SQS
queue (moto's server on loopback)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiobotocore.session import AioSession
from moto_harness import MOTO_ENV, aws_kwargs, moto_server, needs_moto

from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings

pytestmark = needs_moto
STREAM_ID_CHARS = 26


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server for this module's tests; each test makes its own queue."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


async def _receive(sqs: Any, queue_url: str, count: int, within: float = 10.0) -> list[Any]:
    """Long-poll until `count` messages arrived (deleting them), or fail at the deadline."""
    bodies: list[Any] = []
    deadline = time.monotonic() + within
    while len(bodies) < count:
        assert time.monotonic() < deadline, f"only {len(bodies)} of {count} events arrived"
        answer = await sqs.receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10
        )
        for message in answer.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


async def test_a_broadcast_publishes_its_four_state_changes(
    moto_url: str, aio_session: AioSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start then stop a stream: Session Created, Stream Start, Stream End, Session Ended arrive
    in the queue with IVS's envelope, field names and values."""
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    async with aio_session.create_client("sqs", **aws_kwargs(moto_url)) as sqs:
        queue_url = (await sqs.create_queue(QueueName=f"ivs-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
        settings = LocalIvsSettings(port=0, events_queue_url=queue_url, sqs_endpoint_url=moto_url)
        async with LocalIvs(settings, rng=random.Random(1)) as ivs:
            arn = ivs.state.create_channel(name="show")["channel"]["arn"]
            stream_id = ivs.state.start_stream(arn)["stream"]["streamId"]
            ivs.state.stop_stream(arn)
            events = await _receive(sqs, queue_url, 4)
    assert [e["detail"]["event_name"] for e in events] == [
        "Session Created",
        "Stream Start",
        "Stream End",
        "Session Ended",
    ]
    for event in events:
        assert event["source"] == "aws.ivs"
        assert event["detail-type"] == "IVS Stream State Change"
        assert event["version"] == "0"
        assert event["account"] == "123456789012"
        assert event["region"] == "us-west-2"
        assert event["resources"] == [arn]
        assert event["detail"]["channel_name"] == "show"
        assert event["detail"]["stream_id"] == stream_id
        assert len(event["detail"]["stream_id"]) == STREAM_ID_CHARS
        moment = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs(moment.timestamp() - time.time()) < 60
    assert len({e["id"] for e in events}) == 4
