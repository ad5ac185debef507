"""A `metadata-gateway serve --local-ivs` child process with one token, for tests that need the
real process (its logs, its memory, its handling of raw sockets)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from metadata_gateway.ingress.auth import hash_token

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class GatewayProcess:
    """The child process, the URL it logged, and the file its log lines go to."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port

    def rss_mb(self) -> float:
        """Resident memory now, from /proc/<pid>/status."""
        return self._status_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """The most resident memory the process has had (its high-water mark)."""
        return self._status_kb("VmHWM") / 1024

    def _status_kb(self, name: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {name} in /proc/{self.process.pid}/status")

    def log_records(self) -> list[dict[str, Any]]:
        """Every log line; one that is not JSON comes back with level "raw"."""
        records = []
        for line in self.log.read_bytes().splitlines():
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                records.append({"level": "raw", "message": line.decode(errors="replace")})
        return records

    def error_records(self) -> list[dict[str, Any]]:
        """Log lines at error level or above, and anything that is not a JSON log line."""
        return [r for r in self.log_records() if r.get("level") in ("error", "critical", "raw")]


def start_gateway(workdir: Path, *, token: str, name: str, env: dict[str, str]) -> GatewayProcess:
    """Start the gateway with `token` on a free port; wait for its "gateway listening" line."""
    tokens = workdir / "tokens.toml"
    tokens.write_text(
        f'[[tokens]]\nname = "{name}"\nsha256 = "{hash_token(token)}"\nrate = 1000000\n'
    )
    log = workdir / "gateway.log"
    command = [sys.executable, "-m", "metadata_gateway", "serve", "--local-ivs", "--port", "0"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--tokens-file", str(tokens)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, **env},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_bytes().splitlines():
            if b'"gateway listening"' in line:
                return GatewayProcess(process, str(orjson.loads(line)["url"]), log)
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"the gateway did not start:\n{log.read_text()[-2000:]}")


def stop_gateway(gateway: GatewayProcess) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `STOP_TIMEOUT_S`."""
    gateway.process.send_signal(signal.SIGTERM)
    try:
        gateway.process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()
