"""The benchmark harness end to end, briefly, so that it cannot rot unnoticed (no timings)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 50
SMOKE_COMMAND = (sys.executable, "-m", "bench", "--profile", "smoke", "--only", "saturated")
# The contract of issue 5, spelled out here rather than imported from `bench`, so that a
# change to the harness cannot quietly change what it promises.
SUMMARY_KEYS = (
    "delivered_cues_per_s",
    "channel_calls_per_s",
    "max_calls_in_any_1s_window",
    "payload_fill",
    "cues_per_call",
    "throttled",
    "lost_cues",
    "delivery_latency_p50_ms",
    "delivery_latency_p99_ms",
    "naive_delivered_cues_per_s",
    "naive_throttled",
    "naive_lost_cues",
    "speedup_vs_naive",
    "account_calls_per_s",
    "account_utilization",
    "max_account_calls_in_any_1s_window",
    "fairness",
    "added_latency_p50_ms",
    "added_latency_p99_ms",
    "http_ingress_ratio",
    "ws_ingress_ratio",
    "rss_mb_per_10k_channels",
    "cpu_percent_10k_channels_waiting",
    "deflate_cues_per_call_ratio",
    "large_cue_16k_latency_p99_ms",
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`python -m bench` on its smallest scenario: one saturated channel of 100-byte cues."""
    out = tmp_path_factory.mktemp("bench") / "out.json"
    completed = subprocess.run(
        [*SMOKE_COMMAND, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document: dict[str, Any] = orjson.loads(out.read_bytes())
    return document


def test_summary_has_exactly_the_agreed_keys(smoke_run: dict[str, Any]) -> None:
    """The JSON's `summary` names every agreed figure, and nothing else."""
    assert tuple(smoke_run["summary"]) == SUMMARY_KEYS


def test_saturated_channel_loses_nothing_and_is_never_throttled(
    smoke_run: dict[str, Any],
) -> None:
    """Every cue answered 202 reaches IVS or is counted as dropped; IVS refuses no call."""
    summary = smoke_run["summary"]
    assert summary["lost_cues"] == 0
    assert summary["throttled"] == 0
    assert summary["max_calls_in_any_1s_window"] is not None
    figures = smoke_run["scenarios"]["saturated"]["by_size"]["100"]
    assert figures["drained"] is True
    assert figures["accepted"] > 0
    assert figures["duplicate_deliveries"] == 0
    assert figures["unknown_deliveries"] == 0


def test_targets_are_reported_for_what_ran(smoke_run: dict[str, Any]) -> None:
    """Each target is listed; those of scenarios that did not run are marked unmeasured."""
    targets = {t["key"]: t for t in smoke_run["targets"]}
    assert targets["lost_cues"]["met"] is True
    assert targets["throttled"]["met"] is True
    assert targets["fairness"]["value"] is None
    assert targets["fairness"]["met"] is None


DISTRIBUTED_COMMAND = (sys.executable, "-m", "bench", "--profile", "smoke", "--only", "distributed")
DISTRIBUTED_TIMEOUT_S = 90


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_distributed_scenario_reports_beside_the_single_process(tmp_path: Path) -> None:
    """3 replicas on one Redis: the same figures, in `distributed_summary`, the summary intact."""
    out = tmp_path / "out.json"
    completed = subprocess.run(
        [*DISTRIBUTED_COMMAND, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DISTRIBUTED_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document: dict[str, Any] = orjson.loads(out.read_bytes())
    assert tuple(document["summary"]) == SUMMARY_KEYS
    replicas = document["distributed_summary"]
    assert replicas["replicas"] == 3
    assert replicas["lost_cues"] == 0
    assert replicas["throttled"] == 0
    assert replicas["fairness"] is not None
    scenario = document["scenarios"]["distributed"]
    saturated = scenario["saturated"]["by_size"]["100"]
    assert saturated["drained"] is True
    assert saturated["accepted"] > 0
    assert saturated["unknown_deliveries"] == 0
    assert scenario["account"]["drained"] is True
    assert scenario["account"]["lost_cues"] == 0
    assert "3 replicas" in completed.stdout


def test_distributed_scenario_is_skipped_without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """No redis-server: the scenario says so instead of failing, and the table shows the note."""
    from bench import procs, report
    from bench.context import Bench
    from bench.profile import SMOKE
    from bench.scenarios import distributed

    monkeypatch.setattr(procs, "redis_binary", lambda: None)
    bench = Bench(profile=SMOKE, log_dir=Path("/nonexistent"), http=None)  # type: ignore[arg-type]
    figures = asyncio.run(distributed.run(bench))
    assert "redis-server is not installed" in figures["skipped"]
    scenarios = {"distributed": figures}
    summary = report.summarize(scenarios)
    distributed_summary = report.summarize_distributed(figures)
    document: dict[str, Any] = {
        "bench": {"profile": "smoke"},
        "summary": summary,
        "distributed_summary": distributed_summary,
        "targets": report.check_targets(summary, scenarios),
        "scenarios": scenarios,
    }
    assert distributed_summary["lost_cues"] is None
    assert "skipped: redis-server is not installed" in report.render(document)
