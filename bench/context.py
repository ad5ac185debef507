"""What every scenario gets: the profile, a directory for child logs and one HTTP session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from bench import observe, procs
from bench.procs import Child
from bench.profile import Profile

HTTP_LIMIT = 64  # connections the driver's session opens per host
WARM_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Bench:
    """The run's shared resources; scenarios start their own local IVS and gateways from it."""

    profile: Profile
    log_dir: Path
    http: aiohttp.ClientSession
    auth: bool = True  # gateways check a bearer token per request, as deployed

    @contextlib.asynccontextmanager
    async def local_ivs(self, name: str, *, max_channels: int = 5_000) -> AsyncIterator[Child]:
        """A fresh local IVS, so each scenario's record and limits start empty."""
        async with procs.local_ivs(
            log_dir=self.log_dir, name=name, max_channels=max_channels
        ) as ivs:
            yield ivs

    @contextlib.asynccontextmanager
    async def gateway(
        self,
        ivs: Child,
        name: str,
        *,
        flags: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> AsyncIterator[Child]:
        """A fresh gateway in front of `ivs`."""
        async with procs.gateway(
            ivs.url, log_dir=self.log_dir, name=name, flags=flags, env=env, auth=self.auth
        ) as gateway:
            await self._warm_up(ivs, gateway)
            yield gateway

    async def _warm_up(self, ivs: Child, gateway: Child) -> None:
        # A fresh gateway holds its first calls for one window (a process it replaced may have
        # spent the budget) and loads code on first use: one cue delivered on a channel of its
        # own shows both are behind us, so that figures describe the steady state.
        (arn,) = await observe.create_channels(self.http, ivs.url, 1, prefix=f"warm-{gateway.name}")
        gateway.warm_channel = arn
        async with self.http.post(
            f"{gateway.url}/v1/cues",
            data=orjson.dumps({"channel": arn, "type": "custom", "data": {"warm": True}}),
            headers={"Content-Type": "application/json", **gateway.headers},
        ) as response:
            if response.status != 202:
                raise RuntimeError(f"{gateway.name} refused the warm-up cue: {response.status}")
        if not await observe.wait_drained(self.http, gateway, within=WARM_TIMEOUT_S):
            raise RuntimeError(f"{gateway.name} did not deliver its warm-up cue")

    async def channels(self, ivs: Child, count: int, prefix: str) -> list[str]:
        """`count` live channels at `ivs`."""
        return await observe.create_channels(self.http, ivs.url, count, prefix=prefix)


@contextlib.asynccontextmanager
async def open_bench(profile: Profile, log_dir: Path, *, auth: bool = True) -> AsyncIterator[Bench]:
    """The shared resources of one run (`log_dir` must exist), closed afterwards."""
    connector = aiohttp.TCPConnector(limit_per_host=HTTP_LIMIT)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield Bench(profile=profile, log_dir=log_dir, http=http, auth=auth)
