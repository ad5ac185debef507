"""Shared fixtures: a local IVS on a free loopback port, and botocore clients pointed at it."""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config
from distributed_harness import redis_server

from metadata_gateway.local_ivs import LocalIvs, LocalIvsSettings

RNG_SEED = 20200714  # fixed, so ids and fault dice repeat from run to run
REGION = "us-west-2"


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return f"<FakeClock now={self.now}>"

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def client_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for an IVS client on `url`, with retries off so every error surfaces."""
    return {
        "region_name": REGION,
        "endpoint_url": url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    """One botocore session for the run, so the IVS model is loaded once."""
    return AioSession()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A monotonic clock for the rate limiter that starts at 0.0."""
    return FakeClock()


@pytest.fixture
async def local_ivs() -> AsyncIterator[LocalIvs]:
    """A started local IVS on 127.0.0.1 (any free port) with a seeded random generator."""
    async with LocalIvs(LocalIvsSettings(port=0), rng=random.Random(RNG_SEED)) as ivs:
        yield ivs


@pytest.fixture
async def make_local_ivs() -> AsyncIterator[Callable[..., Awaitable[LocalIvs]]]:
    """Start extra local IVSes with other settings or clocks; all are closed afterwards."""
    async with AsyncExitStack() as stack:

        async def make(*, clock: Callable[[], float] | None = None, **settings: Any) -> LocalIvs:
            ivs = LocalIvs(
                LocalIvsSettings(**{"port": 0, **settings}),
                rng=random.Random(RNG_SEED),
                **({"clock": clock} if clock is not None else {}),
            )
            return await stack.enter_async_context(ivs)

        yield make


@pytest.fixture
async def make_ivs_client(
    aio_session: AioSession,
) -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    """Open aiobotocore IVS clients on any URL; all are closed afterwards."""
    async with AsyncExitStack() as stack:

        async def make(url: str) -> Any:
            return await stack.enter_async_context(
                aio_session.create_client(
                    "ivs", config=AioConfig(retries={"total_max_attempts": 1}), **client_kwargs(url)
                )
            )

        yield make


@pytest.fixture
async def ivs_client(local_ivs: LocalIvs, aio_session: AioSession) -> AsyncIterator[Any]:
    """An aiobotocore IVS client on `local_ivs`, retries off."""
    async with aio_session.create_client(
        "ivs", config=AioConfig(retries={"total_max_attempts": 1}), **client_kwargs(local_ivs.url)
    ) as client:
        yield client


@pytest.fixture
def boto3_client(local_ivs: LocalIvs) -> Iterator[Any]:
    """A blocking boto3 IVS client on `local_ivs`, retries off; call it via asyncio.to_thread."""
    client = boto3.client(
        "ivs", config=Config(retries={"total_max_attempts": 1}), **client_kwargs(local_ivs.url)
    )
    yield client
    client.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client for the admin API and raw wire requests."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def live_channel(local_ivs: LocalIvs) -> str:
    """The ARN of a channel named `live` whose simulated stream is live."""
    arn: str = local_ivs.state.create_channel(name="live")["channel"]["arn"]
    local_ivs.state.start_stream(arn)
    return arn


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a random loopback port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with redis_server() as url:
        yield url
