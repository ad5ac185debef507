"""PutMetadata through aiobotocore: one long-lived client per region, retries left to us."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.session import get_session as get_botocore_session

from metadata_gateway.core.arn import parse_channel_arn
from metadata_gateway.core.ivs import ERROR_OUTCOMES, IvsCallError, Outcome

MAX_POOL_CONNECTIONS = 256  # 155 calls/s at up to ~1 s each must not queue for a connection


class IvsSender:
    """A `MetadataSink` that calls Amazon IVS (or the local IVS at `endpoint_url`)."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        timeout: float = 5.0,
        credentials: tuple[str, str] | None = None,
        session: AioSession | None = None,
        accounts: Mapping[str, AioSession] | None = None,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._credentials = credentials
        self._session = session or get_session()
        # Account id -> the session whose credentials call that account's channels.
        self._accounts = dict(accounts or {})
        # aiobotocore's default (legacy) mode retries a 429 up to 4 more times on its own,
        # spending budget behind the scheduler's back: one attempt, and the scheduler decides.
        self._config = AioConfig(
            retries={"total_max_attempts": 1},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<IvsSender endpoint={self._endpoint_url or 'aws'} regions={list(self._clients)}>"

    async def __aenter__(self) -> IvsSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every client."""
        self._clients.clear()
        await self._stack.aclose()

    async def client(self, region: str, account: str | None = None) -> Any:
        """The IVS client for a region (and an account with credentials of its own), created on
        first use and kept."""
        key = (region, account if account in self._accounts else None)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            return await self._create_client(key)

    async def _create_client(self, key: tuple[str, str | None]) -> Any:
        client = self._clients.get(key)
        if client is None:
            region, account = key
            kwargs: dict[str, Any] = {"region_name": region, "config": self._config}
            if self._endpoint_url:
                kwargs["endpoint_url"] = self._endpoint_url
            session = self._session if account is None else self._accounts[account]
            if self._credentials and account is None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = self._credentials
            client = await self._stack.enter_async_context(session.create_client("ivs", **kwargs))
            self._clients[key] = client
        return client

    async def put_metadata(self, *, region: str, channel_arn: str, metadata: str) -> None:
        """Send one payload; raise `IvsCallError` with the outcome on any failure."""
        parsed = parse_channel_arn(channel_arn)
        try:
            client = await self.client(region, parsed.account if parsed else None)
            await client.put_metadata(channelArn=channel_arn, metadata=metadata)
        except (NoCredentialsError, ProfileNotFound) as exc:
            # An account whose configured credentials cannot be had: refused, like IVS would.
            name = type(exc).__name__
            raise IvsCallError(Outcome.ACCESS_DENIED, str(exc), error_name=name) from None
        except ClientError as exc:
            raise _classify(exc) from None
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise IvsCallError(Outcome.TIMEOUT, str(exc)) from None
        except (EndpointConnectionError, ConnectionClosedError, HTTPClientError) as exc:
            raise IvsCallError(Outcome.CONNECTION_ERROR, str(exc)) from None


def ivs_regions() -> frozenset[str]:
    """Every region where botocore knows an IVS endpoint, in all partitions."""
    session = get_botocore_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ivs", partition_name=partition)
    )


def _classify(exc: ClientError) -> IvsCallError:
    response: dict[str, Any] = exc.response
    name = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    # IVS puts its text in `exceptionMessage`, which botocore leaves outside Error.Message.
    message = str(response.get("exceptionMessage") or response.get("Error", {}).get("Message", ""))
    outcome = ERROR_OUTCOMES.get(name)
    if outcome is None:
        outcome = Outcome.SERVER_ERROR if status >= 500 else Outcome.CLIENT_ERROR
    return IvsCallError(outcome, f"{name}: {message}" if message else name, error_name=name)
