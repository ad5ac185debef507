"""Child processes of the benchmark: started on 127.0.0.1, watched through /proc, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadata_gateway.ingress.auth import hash_token, new_token

BENCH_TOKEN_RATE = 10_000_000  # cues/s
ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0  # the gateway drains for --drain-timeout before it exits
_URL = re.compile(r"http://127\.0\.0\.1:\d+")
_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Credentials for the local IVS, which accepts any; never real ones.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-west-2",
}


class ChildError(RuntimeError):
    """A child process that did not start, with the end of its log."""


@dataclass(frozen=True, slots=True)
class Usage:
    """A process's resident memory and CPU time (user + system) at one moment."""

    rss_bytes: int
    cpu_s: float
    at: float  # time.monotonic() of the reading


class Child:
    """One running child process, its log file and the URL it announced."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.url = ""
        self.headers: dict[str, str] = {}  # what every request to it must carry (the token)
        self.warm_channel = ""  # a gateway's warm-up channel, left out of scenario figures

    def __repr__(self) -> str:
        state = "running" if self.process.returncode is None else f"exit {self.process.returncode}"
        return f"<Child {self.name} pid={self.process.pid} {state} {self.url}>"

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def usage(self) -> Usage:
        """Resident memory and CPU time so far, read from /proc."""
        rss_kb = 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / _CLOCK_TICKS
        return Usage(rss_bytes=rss_kb * 1024, cpu_s=cpu, at=time.monotonic())

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def wait_ready(self, within: float = READY_TIMEOUT_S) -> str:
        """Wait for the log line announcing the listening URL; return the URL."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise ChildError(f"{self.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                for line in self.log.read_text(errors="replace").splitlines():
                    if "listening" in line and (match := _URL.search(line)):
                        self.url = match.group(0)
                        return self.url
            await asyncio.sleep(0.02)
        raise ChildError(
            f"{self.name} did not announce its URL in {within:g} s:\n{self.log_tail()}"
        )

    async def stop(self, grace: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to `grace` s, then SIGKILL; return the exit code."""
        process = self.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            except asyncio.CancelledError:
                # No time left to wait politely: make sure it dies, then let the cancel go on.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                raise
        return process.returncode if process.returncode is not None else -1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the benchmark itself is killed (even with
    # SIGKILL, which skips every finally block), the kernel sends the child SIGTERM.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: ours without MG_* or AWS_* settings, plus local credentials."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MG_", "AWS_")) or k in ("AWS_CA_BUNDLE",)
    }
    env.update(LOCAL_AWS_ENV)
    # The children import `bench` (the bare server) from this checkout, wherever we run from.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def child(
    name: str,
    args: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Child]:
    """Start `python <args>` as a child, wait until it announces its URL, stop it on exit."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=child_env(env),
            preexec_fn=_die_with_parent,
        )
    running = Child(name, process, log)
    try:
        await running.wait_ready()
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def local_ivs(
    *, log_dir: Path, name: str = "local-ivs", max_channels: int = 5_000
) -> AsyncIterator[Child]:
    """A local IVS with IVS's limits (5/s per channel, 155/s per account) on a free port."""
    args = [
        "-m",
        "metadata_gateway",
        "local-ivs",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--channel-rate",
        "5",
        "--account-rate",
        "155",
        "--max-channels",
        str(max_channels),
        "--max-events",
        "1000000",
    ]
    async with child(name, args, log_dir=log_dir) as running:
        yield running


def write_token(log_dir: Path, name: str) -> str:
    """A fresh API token for one gateway, its hash written to `<name>.tokens.toml`; the token."""
    token = new_token()
    # Allowed everywhere, at a rate no scenario reaches: the gateway checks the token and the
    # scope of every cue as in production, but the client's own rate never decides a figure.
    (log_dir / f"{name}.tokens.toml").write_text(
        f'[[tokens]]\nname = "bench"\nsha256 = "{hash_token(token)}"\n'
        f'channels = ["*"]\nrate = {BENCH_TOKEN_RATE}\n'
    )
    return token


@contextlib.asynccontextmanager
async def gateway(
    ivs_url: str,
    *,
    log_dir: Path,
    name: str = "gateway",
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    auth: bool = True,
) -> AsyncIterator[Child]:
    """The gateway sending to `ivs_url` with IVS's limits, on a free port; with `auth`, it
    checks a bearer token on every request as in production, else it runs --insecure-no-auth."""
    token = write_token(log_dir, name) if auth else ""
    auth_flags = ["--tokens-file", str(log_dir / f"{name}.tokens.toml")] if auth else []
    args = [
        "-m",
        "metadata_gateway",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--endpoint-url",
        ivs_url,
        "--channel-rate",
        "5",
        "--account-rate",
        "155",
        *(auth_flags or ["--insecure-no-auth"]),
        *flags,
    ]
    async with child(name, args, log_dir=log_dir, env=env) as running:
        running.headers = {"Authorization": f"Bearer {token}"} if auth else {}
        yield running


@contextlib.asynccontextmanager
async def bare_server(*, log_dir: Path, name: str = "bare") -> AsyncIterator[Child]:
    """The bare aiohttp baseline server (`bench.bare_server`) on a free port."""
    async with child(name, ["-m", "bench.bare_server", "--port", "0"], log_dir=log_dir) as running:
        yield running


REDIS_FLAGS = ("--save", "", "--appendonly", "no")  # a throwaway store: no persistence


def redis_binary() -> str | None:
    """The redis-server executable, or None when it is not installed."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (redis-server cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def redis_server(*, log_dir: Path, name: str = "redis") -> AsyncIterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence, its own directory); its URL."""
    binary = redis_binary()
    if binary is None:
        raise ChildError("redis-server is not installed")
    port = free_port()
    directory = log_dir / name
    directory.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv,
            *REDIS_FLAGS,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            preexec_fn=_die_with_parent,
        )
    running = Child(name, process, log)
    running.url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.returncode is not None:
                raise ChildError(f"{name} exited early:\n{running.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if time.monotonic() >= deadline:
                    raise ChildError(f"{name} did not listen:\n{running.log_tail()}") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break
        yield running.url
    finally:
        await running.stop(grace=5.0)
