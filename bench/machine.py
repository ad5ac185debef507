"""The machine the run happened on, and how much CPU other processes took during a scenario."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def describe() -> dict[str, Any]:
    """CPU, cores, memory, OS and the versions that matter to the figures."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    versions: dict[str, str | None] = {}
    for package in ("aiohttp", "aiobotocore", "botocore", "orjson", "prometheus-client"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1e6, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass(frozen=True, slots=True)
class CpuMark:
    """Busy CPU time of the whole machine and of this process tree at one moment."""

    machine_s: float
    ours_s: float
    at: float


def mark() -> CpuMark:
    """Read the machine's busy time (/proc/stat) and ours (this process and reaped children)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    busy = (user + nice + system + irq + softirq + steal) / _TICKS
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    return CpuMark(machine_s=busy, ours_s=ours, at=time.monotonic())


def foreign_share(start: CpuMark, end: CpuMark) -> float:
    """The share of all cores that processes outside this run kept busy between two marks."""
    wall = max(end.at - start.at, 1e-9)
    foreign = (end.machine_s - start.machine_s) - (end.ours_s - start.ours_s)
    return round(max(0.0, foreign) / (wall * (os.cpu_count() or 1)), 3)
