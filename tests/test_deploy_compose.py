"""The Compose demo: files it mounts, how its services find each other, and the load script."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml

from metadata_gateway.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "deploy" / "compose"
PROVISIONING = COMPOSE_DIR / "grafana" / "provisioning"
SHUTDOWN_MARGIN_S = 5  # closing WebSocket sessions and connections after the drain


def compose() -> dict[str, Any]:
    """docker-compose.yml."""
    data: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())
    return data


def service(name: str) -> dict[str, Any]:
    """One service of the Compose file."""
    found: dict[str, Any] = compose()["services"][name]
    return found


def mounts(name: str) -> dict[PurePosixPath, Path]:
    """A service's bind mounts: path in the container -> path on this machine."""
    found = {}
    for volume in service(name).get("volumes", []):
        source, target, *_ = volume.split(":")
        found[PurePosixPath(target)] = (COMPOSE_DIR / source).resolve()
    return found


def on_host(name: str, path: str) -> Path:
    """Where a path inside a service's container comes from on this machine."""
    inside = PurePosixPath(path)
    for target, source in mounts(name).items():
        if inside == target or target in inside.parents:
            return source / inside.relative_to(target)
    raise AssertionError(f"{path} is not mounted into {name}")


def seconds(duration: str) -> float:
    """A Compose duration such as 20s or 1m30s, in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts is not None, duration
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def load_script() -> ModuleType:
    """deploy/compose/load.py, imported."""
    spec = importlib.util.spec_from_file_location("demo_load", COMPOSE_DIR / "load.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_mounted_file_exists() -> None:
    """Each bind mount of each service names a file or directory of the repository."""
    for name in compose()["services"]:
        for source in mounts(name).values():
            assert source.exists(), f"{name}: {source} does not exist"


def test_ports_are_published_on_loopback_only() -> None:
    """The demo is reachable from this machine only."""
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_gateway_runs_the_local_ivs_from_this_repository() -> None:
    """The gateway builds from the repository's Dockerfile and needs no AWS account."""
    gateway = service("gateway")
    assert (COMPOSE_DIR / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()
    assert "--local-ivs" in gateway["command"]
    published = {int(port.rsplit(":", 1)[1]) for port in gateway["ports"]}
    assert published == {Settings().port}


def test_stop_grace_period_outlasts_the_drain() -> None:
    """`docker compose stop` gives the gateway its drain deadline before SIGKILL."""
    grace = seconds(service("gateway")["stop_grace_period"])
    assert grace >= Settings().drain_timeout + SHUTDOWN_MARGIN_S


def test_prometheus_scrapes_the_gateway_service_with_the_repository_rules() -> None:
    """Prometheus reads deploy/prometheus and scrapes the gateway service on its port."""
    flags = dict(flag.split("=", 1) for flag in service("prometheus")["command"])
    config_file = on_host("prometheus", flags["--config.file"])
    assert config_file == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    (scrape,) = config["scrape_configs"]
    (static,) = scrape["static_configs"]
    assert static["targets"] == [f"gateway:{Settings().port}"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    """Grafana gets the Prometheus data source and loads the repository's dashboard as home."""
    assert on_host("grafana", "/etc/grafana/provisioning") == PROVISIONING
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert source["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]
    (provider,) = yaml.safe_load(
        (PROVISIONING / "dashboards" / "metadata-gateway.yml").read_text()
    )["providers"]
    dashboards = on_host("grafana", provider["options"]["path"])
    assert (dashboards / "metadata-gateway.json").is_file()
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert on_host("grafana", home).is_file()


@pytest.mark.parametrize(
    "url", ["http://192.0.2.10:8080", "https://127.0.0.1:8080", "http://10.0.0.1", "ftp://x"]
)
def test_load_script_refuses_anything_but_loopback(url: str) -> None:
    """The load script only ever targets a gateway on this machine."""
    load = load_script()
    with pytest.raises(load.NotLoopback):
        load.loopback_target(url)


def test_load_script_accepts_loopback_addresses() -> None:
    """127.0.0.1, ::1 and localhost are fine."""
    load = load_script()
    assert load.loopback_target("http://127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert load.loopback_target("http://[::1]:9000") == ("::1", 9000)
    assert load.loopback_target("http://localhost:8080") == ("localhost", 8080)


@pytest.mark.parametrize(
    "flags", [["--duration", "0"], ["--duration", "86400"], ["--rate", "1000"], ["--rate", "-1"]]
)
def test_load_script_is_bounded(flags: list[str]) -> None:
    """Durations over an hour and rates over its maximum are refused before anything is sent."""
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(["--url", "http://127.0.0.1:1", *flags])
    assert exit_info.value.code == 2


def planned_cues(*, clean: bool) -> list[dict[str, Any]]:
    """Every cue the load script sends over 77 ticks (a full cycle of its troubles)."""
    load = load_script()
    cues: list[dict[str, Any]] = []
    for tick in range(77):
        for body in load.plan(tick, "demo", clean=clean, now_ms=0, until_ms=60_000):
            cues.extend(body.get("cues", [body]))
    return cues


def test_load_script_plans_every_outcome_unless_clean() -> None:
    """Over a cycle the load sends invalid, superseding, expiring and unknown-channel cues."""
    missing = load_script().MISSING_CHANNEL
    cues = planned_cues(clean=False)
    assert any(c["type"] == "quiz" and not c["data"] for c in cues)  # rejected
    assert any(c.get("ttl_ms") == 1 for c in cues)  # expires behind a full payload
    assert any(c["channel"] == missing for c in cues)  # IVS: not found
    assert any("not_before" in c for c in cues)
    assert any("repeat_ms" in c for c in cues)
    polls = [c["data"]["poll_id"] for c in cues if c["type"] == "poll"]
    assert len(polls) > len(set(polls))  # superseded
    clean = planned_cues(clean=True)
    assert all(c["data"] or c["type"] == "custom" for c in clean)
    assert not any(c.get("ttl_ms") == 1 or c["channel"] == missing for c in clean)
