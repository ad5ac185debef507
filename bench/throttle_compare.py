"""Why not asyncio-throttle: the CPU its polling burns with many waiting channels, beside the
gateway's own scheduler, and whether it holds a sliding one-second window.

`python -m bench.throttle_compare [--channels 1000,10000] [--seconds 3] [--json FILE]`

Everything runs in this process, one measurement per fresh event loop; CPU is the process's
(`time.process_time`) per second of wall time, so 1.0 is one core kept busy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from asyncio_throttle.throttler import Throttler

from bench.analysis import max_in_window, ms, percentile
from metadata_gateway.config import Settings
from metadata_gateway.core.gateway import Gateway
from metadata_gateway.core.validation import CueRules, parse_cues
from metadata_gateway.intake.local import LocalIntake
from metadata_gateway.running.tasks import TaskRegistry
from metadata_gateway.sending.engine import Engine

CHANNEL_RATE = 5  # IVS PutMetadata calls/s per channel
ACCOUNT_RATE = 155  # and per account
ACCOUNT = "123456789012"
PROBE_S = 0.01  # the probe timer's period, asyncio-throttle's own polling interval
JITTER_S = 0.05  # modelled network time of one call, uniform in [0, JITTER_S]
SEED = 5
ONE_PER_CALL = "x" * 600  # padding that keeps two cues from sharing a 1 KB payload


@dataclass(frozen=True, slots=True)
class Measured:
    """CPU per wall second and the admissions seen while `body` ran for `seconds`."""

    cpu_cores: float
    loop_lag_p99_ms: float | None  # how late a 10 ms timer fires: a busy loop serves all late
    admitted_per_s: float
    max_in_1s_window: int
    lateness_p99_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The figures."""
        return {
            "cpu_cores": round(self.cpu_cores, 3),
            "loop_lag_p99_ms": self.loop_lag_p99_ms,
            "admitted_per_s": round(self.admitted_per_s, 1),
            "max_in_1s_window": self.max_in_1s_window,
            "lateness_p99_ms": self.lateness_p99_ms,
        }


async def _until(deadline: float, coroutines: list[Coroutine[Any, Any, None]]) -> None:
    """Run the callers until `deadline`, then cancel them (a waiting caller may wait long)."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _arn(n: int) -> str:
    return f"arn:aws:ivs:us-west-2:{ACCOUNT}:channel/c{n:07d}"


@dataclass(frozen=True, slots=True)
class _Window:
    cpu_cores: float
    per_s: float
    lag_p99_ms: float | None


async def _measure(
    seconds: float,
    times: list[float],
    run: Callable[[float], Coroutine[Any, Any, None]],
    *,
    settle: float = 0.5,  # start-up (creating thousands of tasks) is left out of the window
) -> _Window:
    """Run `run(deadline)`; CPU, admissions per s and loop lag over its steady middle."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(run(loop.time() + settle + seconds + 0.5))
    await asyncio.sleep(settle)
    lags: list[float] = []

    async def probe() -> None:
        end = loop.time() + seconds
        while loop.time() < end:
            due = loop.time() + PROBE_S
            await asyncio.sleep(PROBE_S)
            lags.append(loop.time() - due)

    cpu0, wall0, count0 = time.process_time(), loop.time(), len(times)
    await probe()
    cpu1, wall1, count1 = time.process_time(), loop.time(), len(times)
    await task
    wall = wall1 - wall0
    return _Window((cpu1 - cpu0) / wall, (count1 - count0) / wall, ms(percentile(lags, 99)))


async def idle_loop(seconds: float) -> Measured:
    """Nothing but the lag probe: the floor every other row's CPU includes."""

    async def run(deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))

    window = await _measure(seconds, [], run)
    return Measured(window.cpu_cores, window.lag_p99_ms, 0.0, 0)


async def throttle_per_channel(channels: int, seconds: float) -> Measured:
    """Each channel loops on its own `Throttler(5, 1.0)`: 5 admissions a second, polling between."""
    admitted: list[float] = []
    per_channel: list[list[float]] = [[] for _ in range(channels)]

    async def run(deadline: float) -> None:
        loop = asyncio.get_running_loop()

        async def channel(n: int) -> None:
            throttler = Throttler(rate_limit=CHANNEL_RATE, period=1.0)
            while loop.time() < deadline:
                await throttler.acquire()  # type: ignore[no-untyped-call]
                # The throttler's own record of the admission: a clock read here instead
                # could land after a garbage-collection pause and fake a crowded window.
                now = throttler._task_logs[-1]
                admitted.append(now)
                per_channel[n].append(now)

        await _until(deadline, [channel(n) for n in range(channels)])

    window = await _measure(seconds, admitted, run)
    return Measured(
        window.cpu_cores,
        window.lag_p99_ms,
        window.per_s,
        max(max_in_window(times) for times in per_channel),
    )


async def throttle_under_account_cap(channels: int, seconds: float) -> Measured:
    """Each channel's own `Throttler(5, 1.0)`, then one shared `Throttler(155, 1.0)`."""
    admitted: list[float] = []
    lateness: list[float] = []

    async def run(deadline: float) -> None:
        loop = asyncio.get_running_loop()
        account = Throttler(rate_limit=ACCOUNT_RATE, period=1.0)

        async def channel() -> None:
            own = Throttler(rate_limit=CHANNEL_RATE, period=1.0)
            while loop.time() < deadline:
                await own.acquire()  # type: ignore[no-untyped-call]
                await account.acquire()  # type: ignore[no-untyped-call]
                now = account._task_logs[-1]
                # How long after the account window had room this caller noticed it.
                if len(admitted) >= ACCOUNT_RATE:
                    lateness.append(now - (admitted[-ACCOUNT_RATE] + 1.0))
                admitted.append(now)

        await _until(deadline, [channel() for _ in range(channels)])

    window = await _measure(seconds, admitted, run)
    late = [x for x in lateness if x > 0]
    return Measured(
        window.cpu_cores,
        window.lag_p99_ms,
        window.per_s,
        max_in_window(admitted),
        ms(percentile(late, 99)),
    )


class _RecordingSink:
    """A `MetadataSink` that answers at once (or never) and records when each call started."""

    def __init__(self, *, answer: bool) -> None:
        self.calls: list[float] = []
        self._answer = answer
        self._never = asyncio.Event()

    async def put_metadata(self, *, region: str, channel_arn: str, metadata: str) -> None:
        self.calls.append(time.monotonic())
        if not self._answer:
            await self._never.wait()


async def gateway_scheduler(channels: int, seconds: float, *, answer: bool = True) -> Measured:
    """The gateway's scheduler and dispatcher (through `Gateway`) with a cue on every channel."""
    sink = _RecordingSink(answer=answer)
    settings = Settings(
        channel_rate=CHANNEL_RATE,
        account_rate=ACCOUNT_RATE,
        total_max_cues=10 * channels,
        total_max_bytes=1 << 30,
    )
    gateway = Gateway(settings)
    tasks = TaskRegistry()
    engine = Engine(gateway, sink=sink, tasks=tasks, clock=asyncio.get_running_loop().time)
    intake, rules = LocalIntake(gateway), CueRules()

    # Enough cues that every channel still has some waiting when the measurement ends, each
    # too big to share a payload, so that every cue is one call.
    per_channel = max(1, math.ceil(ACCOUNT_RATE * (seconds + 2) / channels))
    cues = [
        {"channel": _arn(n), "type": "custom", "data": {"n": n, "k": k, "p": ONE_PER_CALL}}
        for k in range(per_channel)
        for n in range(channels)
    ]

    async def run(deadline: float) -> None:
        engine.start()
        for start in range(0, len(cues), 100):
            intake.keep_now(parse_cues(cues[start : start + 100], batch=True, rules=rules))
        await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))

    try:
        # A fresh gateway holds its first calls for `startup_hold`: measure after it.
        settle = settings.startup_hold + 0.5
        window = await _measure(seconds, sink.calls, run, settle=settle)
    finally:
        await engine.stop()
        await tasks.close()
    return Measured(window.cpu_cores, window.lag_p99_ms, window.per_s, max_in_window(sink.calls))


async def window_check(seconds: float) -> dict[str, Any]:
    """Does a `Throttler(5, 1.0)` ever let 6 calls into one sliding second, at admission or at
    arrival (after a modelled network time)? The gateway's limiter, the same way."""
    rng = random.Random(SEED)
    admitted: list[float] = []
    arrivals: list[float] = []
    throttler = Throttler(rate_limit=CHANNEL_RATE, period=1.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def caller() -> None:
        while loop.time() < deadline:
            async with throttler:
                now = throttler._task_logs[-1]
                admitted.append(now)
                latency = rng.uniform(0, JITTER_S)
                arrivals.append(now + rng.uniform(0, latency))
                await asyncio.sleep(latency)

    await asyncio.gather(*(caller() for _ in range(20)))

    gateway_arrivals: list[float] = []

    class JitterSink:
        async def put_metadata(self, *, region: str, channel_arn: str, metadata: str) -> None:
            start = time.monotonic()
            latency = rng.uniform(0, JITTER_S)
            gateway_arrivals.append(start + rng.uniform(0, latency))
            await asyncio.sleep(latency)

    gateway = Gateway(Settings(total_max_cues=100_000))
    tasks = TaskRegistry()
    engine = Engine(gateway, sink=JitterSink(), tasks=tasks, clock=loop.time)
    intake = LocalIntake(gateway)
    engine.start()
    try:
        calls = int(seconds * CHANNEL_RATE * 2)
        for start in range(0, calls, 100):
            count = min(100, calls - start)
            objs = [{"channel": _arn(0), "type": "custom", "data": {"p": ONE_PER_CALL}}] * count
            intake.keep_now(parse_cues(objs, batch=True, rules=CueRules()))
        await asyncio.sleep(seconds)
    finally:
        await engine.stop()
        await tasks.close()
    return {
        "throttler_max_admitted_in_1s": max_in_window(admitted),
        "throttler_max_arrivals_in_1s": max_in_window(arrivals),
        "gateway_max_arrivals_in_1s": max_in_window(gateway_arrivals),
        "modelled_latency_ms": f"uniform 0-{JITTER_S * 1000:g}, arrival uniform within it",
    }


def _fresh(coroutine: Awaitable[Any]) -> Any:
    gc.collect()

    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


def compare(channel_counts: list[int], seconds: float) -> dict[str, Any]:
    """Every measurement, for each channel count; each in its own event loop."""
    by_channels: dict[str, Any] = {}
    for channels in channel_counts:
        print(f"[throttle_compare] {channels} channels ...", file=sys.stderr, flush=True)
        by_channels[str(channels)] = {
            "asyncio_throttle_per_channel": _fresh(
                throttle_per_channel(channels, seconds)
            ).as_json(),
            "asyncio_throttle_under_account_cap": _fresh(
                throttle_under_account_cap(channels, seconds)
            ).as_json(),
            "gateway_under_account_cap": _fresh(gateway_scheduler(channels, seconds)).as_json(),
            "gateway_all_waiting": _fresh(
                gateway_scheduler(channels, seconds, answer=False)
            ).as_json(),
        }
    return {
        "seconds": seconds,
        "idle_loop_with_probe": _fresh(idle_loop(seconds)).as_json(),
        "ideal": {
            "per_channel_admitted_per_s": "5 x channels",
            "account_admitted_per_s": ACCOUNT_RATE,
        },
        "by_channels": by_channels,
        "window_check": _fresh(window_check(seconds)),
    }


def render(result: dict[str, Any]) -> str:
    """A table of the figures."""
    lines = [
        f"{'channels':>8}  {'setup':<36} {'CPU cores':>9} {'lag p99 ms':>10} "
        f"{'admitted/s':>10} {'max in 1 s':>10}"
    ]
    for channels, rows in result["by_channels"].items():
        for name, row in rows.items():
            lag = row["loop_lag_p99_ms"]
            lines.append(
                f"{int(channels):>8,}  {name:<36} {row['cpu_cores']:>9.3f} "
                f"{'-' if lag is None else f'{lag:.1f}':>10} "
                f"{row['admitted_per_s']:>10,.1f} {row['max_in_1s_window']:>10}"
            )
    idle = result["idle_loop_with_probe"]
    lines.append(f"{'-':>8}  {'idle loop (the lag probe alone)':<36} {idle['cpu_cores']:>9.3f}")
    check = result["window_check"]
    lines += [
        "",
        "Throttler(5, 1.0), 20 callers, max calls in any sliding 1 s:",
        f"  by admission time {check['throttler_max_admitted_in_1s']}, "
        f"by arrival ({check['modelled_latency_ms']} ms) {check['throttler_max_arrivals_in_1s']}",
        f"The gateway's limiter, same latency model: {check['gateway_max_arrivals_in_1s']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.throttle_compare")
    parser.add_argument("--channels", default="1000,10000", help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = parser.parse_args(argv)
    # The gateway logs the cues it drops at close; here that is expected, not news.
    logging.getLogger("metadata_gateway").setLevel(logging.ERROR)
    result = compare([int(c) for c in args.channels.split(",")], args.seconds)
    print(render(result))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
