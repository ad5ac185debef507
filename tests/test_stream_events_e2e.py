"""Stream events and several accounts through real processes on 127.0.0.1: the gateway, the
local IVS and moto's SQS and STS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiobotocore.session import AioSession
from moto_harness import MOTO_ENV, aws_kwargs, moto_server, needs_moto

pytestmark = [needs_moto, pytest.mark.timeout(120)]

START_TIMEOUT_S = 30.0
DEFAULT_ACCOUNT = "123456789012"
ACCOUNT_A, ACCOUNT_B, ACCOUNT_C = "111111111111", "222222222222", "333333333333"


@dataclass
class Child:
    """A child process, the URL it logged, and its log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path


def _start(
    command: Sequence[str], log: Path, pattern: re.Pattern[bytes], env: dict[str, str]
) -> Child:
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "metadata_gateway", *command],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, **MOTO_ENV, **env},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        match = pattern.search(log.read_bytes())
        if match:
            return Child(process, match.group(1).decode(), log)
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")


def _stop(child: Child) -> None:
    child.process.terminate()
    try:
        child.process.wait(10)
    except subprocess.TimeoutExpired:
        child.process.kill()
        child.process.wait()


@contextlib.contextmanager
def local_ivs(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Child]:
    """`metadata-gateway local-ivs` on a free port."""
    child = _start(
        ["local-ivs", "--port", "0", *args],
        workdir / "local_ivs.log",
        re.compile(rb"local IVS listening on (http://127\.0\.0\.1:\d+)"),
        env or {},
    )
    try:
        yield child
    finally:
        _stop(child)


@contextlib.contextmanager
def gateway(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Child]:
    """`metadata-gateway serve` on a free port, without tokens."""
    child = _start(
        ["serve", "--port", "0", "--insecure-no-auth", "--drain-timeout", "1", *args],
        workdir / "gateway.log",
        re.compile(rb'"gateway listening".*?"url": ?"(http://127\.0\.0\.1:\d+)"'),
        env or {},
    )
    try:
        yield child
    finally:
        _stop(child)


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server (SQS and STS) for the module."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
async def sqs(moto_url: str, aio_session: AioSession) -> AsyncIterator[Any]:
    """An SQS client on moto."""
    async with aio_session.create_client("sqs", **aws_kwargs(moto_url)) as client:
        yield client


async def new_queue(sqs: Any) -> str:
    url: str = (await sqs.create_queue(QueueName=f"ivs-events-{uuid.uuid4().hex[:12]}"))["QueueUrl"]
    return url


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.02)


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json(content_type=None)


async def metadata_events(http: aiohttp.ClientSession, ivs: Child, arn: str) -> list[Any]:
    answer = await get_json(http, f"{ivs.url}/_local/metadata?channelArn={quote(arn, safe='')}")
    events: list[Any] = answer["events"]
    return events


async def post_cue(http: aiohttp.ClientSession, gw: Child, cue: dict[str, Any]) -> None:
    async with http.post(f"{gw.url}/v1/cues", json=cue) as response:
        assert response.status == 202, await response.text()


async def channel_view(http: aiohttp.ClientSession, gw: Child, arn: str) -> Any:
    return await get_json(http, f"{gw.url}/v1/channels/{quote(arn, safe='')}")


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value from a Prometheus text exposition (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def create_channel(
    aio_session: AioSession, ivs: Child, *, key: str = "local", name: str = "show"
) -> str:
    async with aio_session.create_client(
        "ivs",
        region_name="us-west-2",
        endpoint_url=ivs.url,
        aws_access_key_id=key,
        aws_secret_access_key="secret",
    ) as client:
        arn: str = (await client.create_channel(name=name))["channel"]["arn"]
        return arn


async def start_stream(http: aiohttp.ClientSession, ivs: Child, arn: str) -> None:
    async with http.post(f"{ivs.url}/_local/streams", json={"channelArn": arn}) as response:
        assert response.status == 200, await response.text()


async def test_a_held_cue_reaches_ivs_within_half_a_second_of_the_stream_start(
    tmp_path: Path, moto_url: str, sqs: Any, aio_session: AioSession, http: aiohttp.ClientSession
) -> None:
    """With the probe at 30 s, a cue held for an offline channel goes out within 0.5 s of
    POST /_local/streams: the Stream Start event travels local IVS -> SQS -> gateway."""
    queue = await new_queue(sqs)
    events = ["--events-queue-url", queue, "--sqs-endpoint-url", moto_url]
    with local_ivs(tmp_path, *events) as ivs:
        arn = await create_channel(aio_session, ivs)
        with gateway(
            tmp_path, "--endpoint-url", ivs.url, "--offline-probe-interval", "30", *events
        ) as gw:
            await post_cue(
                http, gw, {"channel": arn, "type": "quiz", "data": {"question_id": "q1"}}
            )

            async def refused_offline() -> bool:
                return (await channel_view(http, gw, arn))["live"] is False

            await wait_for(refused_offline, what="IVS said the channel is not broadcasting")
            await asyncio.sleep(0.3)  # the gateway is now well inside its 30 s probe wait
            started = time.time()
            await start_stream(http, ivs, arn)

            async def delivered() -> bool:
                return bool(await metadata_events(http, ivs, arn))

            await wait_for(delivered, within=5.0, what="delivery")
            (event,) = await metadata_events(http, ivs, arn)
            latency = event["time"] - started
            print(f"stream start to PutMetadata: {latency * 1000:.0f} ms")
            assert latency < 0.5
            assert json.loads(event["metadata"])["c"][0]["d"]["question_id"] == "q1"
            async with http.get(f"{gw.url}/metrics") as response:
                text = await response.text()
            assert metric(text, "metadata_gateway_stream_events_used_total") >= 1


async def test_duplicated_late_and_malformed_events_change_nothing(
    tmp_path: Path, moto_url: str, sqs: Any, aio_session: AioSession, http: aiohttp.ClientSession
) -> None:
    """A live channel stays live and keeps its state cue through a duplicate Stream Start, a
    Stream End hours late, malformed bodies, other sources and unknown channels; each is
    counted by reason and deleted from the queue."""
    queue = await new_queue(sqs)
    events = ["--events-queue-url", queue, "--sqs-endpoint-url", moto_url]
    with local_ivs(tmp_path, *events) as ivs:
        arn = await create_channel(aio_session, ivs)
        with gateway(tmp_path, "--endpoint-url", ivs.url, *events) as gw:
            await start_stream(http, ivs, arn)
            state = {"channel": arn, "type": "state", "key": "q", "data": {"n": 1}}
            await post_cue(http, gw, state)

            async def repeating() -> bool:
                view = await channel_view(http, gw, arn)
                return bool(view["live"] is True and view["repeating"] == 1)

            await wait_for(repeating, what="state delivered")
            view_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            late = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 3600))
            unknown = arn.rsplit("/", 1)[0] + "/unknownChannel1"

            def envelope(name: str, when: str, channel: str, stream: str) -> str:
                return json.dumps(
                    {
                        "version": "0",
                        "id": str(uuid.uuid4()),
                        "detail-type": "IVS Stream State Change",
                        "source": "aws.ivs",
                        "account": DEFAULT_ACCOUNT,
                        "time": when,
                        "region": "us-west-2",
                        "resources": [channel],
                        "detail": {"event_name": name, "channel_name": "show", "stream_id": stream},
                    }
                )

            live_stream, started_at = await live_stream_of(aio_session, ivs, arn)
            bodies = [
                envelope("Stream Start", started_at, arn, live_stream),  # the one IVS sent
                envelope("Stream End", late, arn, live_stream),  # hours late
                envelope("Session Ended", late, arn, live_stream),  # hours late
                "{not json",
                json.dumps({"source": "aws.medialive", "detail-type": "MediaLive Alert"}),
                envelope("Stream Start", view_time, unknown, "st-" + "u" * 23),
                envelope("Stream Start", view_time, arn, "st-" + "o" * 23)[:40],  # cut short
            ]
            for body in bodies:
                await sqs.send_message(QueueUrl=queue, MessageBody=body)

            async def all_skipped() -> bool:
                async with http.get(f"{gw.url}/metrics") as response:
                    text = await response.text()
                name = "metadata_gateway_stream_events_skipped_total"
                return (
                    metric(text, name, reason="stale") >= 2
                    and metric(text, name, reason="duplicate") >= 1
                    and metric(text, name, reason="malformed") >= 2
                    and metric(text, name, reason="not_stream_state") >= 1
                    and metric(text, name, reason="unknown_channel") >= 1
                )

            await wait_for(all_skipped, what="every bad event counted")
            view = await channel_view(http, gw, arn)
            assert view["live"] is True
            assert view["repeating"] == 1

            async def queue_empty() -> bool:
                attributes = await sqs.get_queue_attributes(
                    QueueUrl=queue,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )
                values = attributes["Attributes"]
                return (
                    int(values["ApproximateNumberOfMessages"])
                    + int(values["ApproximateNumberOfMessagesNotVisible"])
                    == 0
                )

            await wait_for(queue_empty, what="handled events deleted")
            # A fresh cue still goes straight out: nothing made the channel look offline.
            before = len(await metadata_events(http, ivs, arn))
            await post_cue(http, gw, {"channel": arn, "type": "custom", "data": {"x": 1}})

            async def sent() -> bool:
                return len(await metadata_events(http, ivs, arn)) > before

            await wait_for(sent, within=2.0, what="fresh cue delivered")


async def live_stream_of(aio_session: AioSession, ivs: Child, arn: str) -> tuple[str, str]:
    """The live stream's id and start time as an EventBridge `time`."""
    async with aio_session.create_client(
        "ivs",
        region_name="us-west-2",
        endpoint_url=ivs.url,
        aws_access_key_id="local",
        aws_secret_access_key="secret",
    ) as client:
        stream = (await client.get_stream(channelArn=arn))["stream"]
        return str(stream["streamId"]), stream["startTime"].strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_channels_in_two_accounts_go_with_their_profiles_and_a_third_is_denied(
    tmp_path: Path, aio_session: AioSession, http: aiohttp.ClientSession
) -> None:
    """Accounts A and B each call with their own profile's keys; account C has no entry, so the
    default keys call it, the local IVS answers AccessDeniedException, and its cue is dropped
    ivs_error with access_denied in last_error."""
    config = tmp_path / "aws_config"
    config.write_text(
        "[profile acct-a]\naws_access_key_id = AKIDAAAA\naws_secret_access_key = secret-of-a-1\n\n"
        "[profile acct-b]\naws_access_key_id = AKIDBBBB\naws_secret_access_key = secret-of-b-2\n"
    )
    settings = tmp_path / "gateway.toml"
    settings.write_text(
        f'[accounts."{ACCOUNT_A}"]\nprofile = "acct-a"\n\n'
        f'[accounts."{ACCOUNT_B}"]\nprofile = "acct-b"\n'
    )
    keys = [
        "--account",
        f"AKIDAAAA={ACCOUNT_A}",
        "--account",
        f"AKIDBBBB={ACCOUNT_B}",
        "--account",
        f"AKIDCCCC={ACCOUNT_C}",
    ]
    with local_ivs(tmp_path, *keys) as ivs:
        arns = {
            key: await create_channel(aio_session, ivs, key=key)
            for key in ("AKIDAAAA", "AKIDBBBB", "AKIDCCCC")
        }
        for arn in arns.values():
            await start_stream(http, ivs, arn)
        env = {
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no_credentials"),
        }
        with gateway(tmp_path, "--endpoint-url", ivs.url, "--config", str(settings), env=env) as gw:
            for key, arn in arns.items():
                await post_cue(http, gw, {"channel": arn, "type": "custom", "data": {"k": key}})

            async def settled() -> bool:
                got_a = await metadata_events(http, ivs, arns["AKIDAAAA"])
                got_b = await metadata_events(http, ivs, arns["AKIDBBBB"])
                view_c = await channel_view(http, gw, arns["AKIDCCCC"])
                return bool(got_a and got_b and view_c["last_error"])

            await wait_for(settled, what="all three channels settled")
            for key in ("AKIDAAAA", "AKIDBBBB"):
                (event,) = await metadata_events(http, ivs, arns[key])
                assert event["accessKeyId"] == key
                assert json.loads(event["metadata"])["c"][0]["d"]["k"] == key
            assert await metadata_events(http, ivs, arns["AKIDCCCC"]) == []
            view_c = await channel_view(http, gw, arns["AKIDCCCC"])
            assert view_c["last_error"].startswith("access_denied: AccessDeniedException")
            async with http.get(f"{gw.url}/metrics") as response:
                text = await response.text()
            assert metric(text, "metadata_gateway_cues_dropped_total", reason="ivs_error") == 1
            log = gw.log.read_text()
            assert "secret-of-a-1" not in log
            assert "secret-of-b-2" not in log


async def test_a_role_arn_account_uses_temporary_credentials_refreshed_before_expiry(
    tmp_path: Path, moto_url: str, aio_session: AioSession, http: aiohttp.ClientSession
) -> None:
    """A role_arn account calls with credentials from moto's STS (ASIA key ids, not the default
    keys), and botocore fetches new ones while the old still have minutes left: 900 s credentials
    are inside botocore's 15-minute refresh window, so every call gets fresh ones."""
    settings = tmp_path / "gateway.toml"
    settings.write_text(
        f'[accounts."{DEFAULT_ACCOUNT}"]\n'
        f'role_arn = "arn:aws:iam::{DEFAULT_ACCOUNT}:role/metadata-gateway"\n'
        'external_id = "show-42"\nduration_seconds = 900\n'
    )
    with local_ivs(tmp_path) as ivs:
        arn = await create_channel(aio_session, ivs)
        await start_stream(http, ivs, arn)
        env = {"AWS_ENDPOINT_URL_STS": moto_url}
        with gateway(tmp_path, "--endpoint-url", ivs.url, "--config", str(settings), env=env) as gw:
            for n in range(3):
                await post_cue(http, gw, {"channel": arn, "type": "custom", "data": {"n": n}})

                async def delivered(count: int = n + 1) -> bool:
                    return len(await metadata_events(http, ivs, arn)) >= count

                await wait_for(delivered, what=f"cue {n}")
            events = await metadata_events(http, ivs, arn)
            keys = [event["accessKeyId"] for event in events]
            assert all(key.startswith("ASIA") for key in keys), keys
            assert len(set(keys)) >= 2, keys
