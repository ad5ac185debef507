"""The Grafana dashboard and the rules against a real Prometheus scraping real gateways.

One module-wide stack on 127.0.0.1 at free ports: a gateway (`serve --local-ivs`), two
distributed replicas sharing a `redis-server` and sending to that gateway's local IVS, and
Debian's Prometheus scraping all three every second with the rules of deploy/prometheus
loaded. The Compose demo's load script pushes a few seconds of cues, bad ones included, then
every query of the dashboard and of the rules goes through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import yaml
from distributed_harness import Replica, redis_process
from prometheus_client.parser import text_string_to_metric_families

from metadata_gateway.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "metadata-gateway.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
LOAD_SCRIPT = ROOT / "deploy" / "compose" / "load.py"
LOAD_SECONDS = 3
LOAD_RATE = 10  # ticks per second: every kind of cue the script sends shows up in 3 s
START_TIMEOUT_S = 20.0
DATA_TIMEOUT_S = 15.0  # a scrape and a rule evaluation every second, so data comes quickly
# What Grafana would put in place of its variables: windows wide enough to cover the whole
# load, the job of the scrape config, every instance.
RATE_WINDOW = "1m"
RANGE = "5m"


def require(binary: str) -> str:
    """The path of `binary`; skip without it, but fail in CI, which installs it."""
    path = shutil.which(binary)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is missing; .ci/run installs Debian's prometheus package")
        pytest.skip(f"{binary} is not installed (apt-get install prometheus)")
    return path


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    """Every panel, rows left out, panels inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return found


def panel_queries() -> list[Any]:
    """One pytest param per panel query, its expr, named by panel title and refId."""
    return [
        pytest.param(target["expr"], id=f"{panel['title']}/{target['refId']}")
        for panel in panels()
        for target in panel["targets"]
    ]


def job_name() -> str:
    """The job the scrape config gives the gateway; the dashboard's $job."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (scrape,) = config["scrape_configs"]
    name: str = scrape["job_name"]
    return name


def rules() -> list[dict[str, Any]]:
    """Every rule of every rule file."""
    found: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def grafana_expand(expr: str) -> str:
    """The query Grafana would send for `expr`; fails on a variable the dashboard lacks."""
    values = {
        "__rate_interval": RATE_WINDOW,
        "__interval": "1s",
        "__range": RANGE,
        "job": job_name(),
        "instance": ".+",
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together, so distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url`; return the status and body, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, bytes(exc.read())


def wait_until_ok(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until it answers 200, failing early if `process` exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited {process.returncode}:\n{log.read_text()}")
        try:
            if get(url, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM `process`, SIGKILL it if it lingers; return its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class Stack:
    """The running gateway and Prometheus, and how to ask Prometheus."""

    gateway_url: str
    prometheus_url: str
    gateway: subprocess.Popen[bytes]
    logs: dict[str, Path]
    replicas: list[Replica]

    def api(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        """Call Prometheus's HTTP API; return the status and the decoded answer."""
        query = urllib.parse.urlencode(params)
        status, body = get(f"{self.prometheus_url}/api/v1/{path}?{query}")
        answer: dict[str, Any] = json.loads(body)
        return status, answer

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate `expr` now; fail if Prometheus cannot parse or run it."""
        status, answer = self.api("query", query=expr)
        assert status == 200, f"{expr}\n{answer.get('errorType')}: {answer.get('error')}"
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def query_until_data(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate `expr` until it returns a finite value, for a few scrapes at most."""
        deadline = time.monotonic() + DATA_TIMEOUT_S
        while True:
            result = self.query(expr)
            if any(math.isfinite(float(series["value"][1])) for series in result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"no data within {DATA_TIMEOUT_S} s for\n{expr}\ngot {result}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The gateway and Prometheus, started, scraping, with the load already sent."""
    prometheus = require("prometheus")
    require("redis-server")
    tmp = tmp_path_factory.mktemp("stack")
    gateway_port, ivs_port, prometheus_port, *replica_ports = free_ports(5)
    logs = {name: tmp / f"{name}.log" for name in ("gateway", "prometheus", "load")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    targets = [f"127.0.0.1:{port}" for port in (gateway_port, *replica_ports)]
    config["scrape_configs"][0]["static_configs"] = [{"targets": targets}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (
        redis_process() as redis,
        logs["gateway"].open("wb") as gateway_log,
        logs["prometheus"].open("wb") as prometheus_log,
    ):
        gateway = start(
            [
                *(sys.executable, "-m", "metadata_gateway", "serve", "--local-ivs"),
                *("--host", "127.0.0.1", "--port", str(gateway_port)),
                *("--local-ivs-port", str(ivs_port), "--log-level", "warning"),
            ],
            gateway_log,
            env,
        )
        server = start(
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--log.level=warn",
            ],
            prometheus_log,
            env,
        )
        replica_args = [
            *("--endpoint-url", f"http://127.0.0.1:{ivs_port}", "--redis-url", redis.url),
            *("--insecure-no-auth", "--log-level", "warning"),
        ]
        group = [
            Replica(port, replica_args, tmp / f"replica{i}.log")
            for i, port in enumerate(replica_ports)
        ]
        try:
            running = Stack(
                gateway_url=f"http://127.0.0.1:{gateway_port}",
                prometheus_url=f"http://127.0.0.1:{prometheus_port}",
                gateway=gateway,
                logs=logs,
                replicas=group,
            )
            wait_until_ok(f"{running.gateway_url}/readyz", gateway, logs["gateway"])
            for replica in group:
                replica.start()
            for replica in group:
                assert replica.proc is not None
                wait_until_ok(f"{replica.url}/readyz", replica.proc, replica.log)
            wait_until_ok(f"{running.prometheus_url}/-/ready", server, logs["prometheus"])
            running.query_until_data(f'count(up{{job="{job_name()}"}} == 1) == 3')
            load = subprocess.run(
                [
                    *(sys.executable, str(LOAD_SCRIPT), "--url", running.gateway_url),
                    *("--duration", str(LOAD_SECONDS), "--rate", str(LOAD_RATE)),
                ],
                capture_output=True,
                timeout=LOAD_SECONDS + 20,
                check=False,
            )
            logs["load"].write_bytes(load.stdout + load.stderr)
            assert load.returncode == 0, logs["load"].read_text()
            yield running
        finally:
            stop(server)
            for replica in group:
                replica.stop()
            stop(gateway)


def start(argv: list[str], log: BinaryIO, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server process with its output in `log`."""
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


# ---- the dashboard on its own ---------------------------------------------------------------


def test_every_panel_has_a_title_description_unit_and_queries() -> None:
    """A reader can tell what each panel shows, in which unit, and each panel has a query."""
    for panel in panels():
        assert panel["title"].strip()
        assert panel["description"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_panels_use_the_datasource_variable() -> None:
    """Every panel and query reads from the dashboard's data source, not a hard-coded one."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panels_do_not_overlap() -> None:
    """Panels tile the 24-column grid without covering each other."""
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_ids_are_unique_and_the_time_range_sane() -> None:
    """Panel ids are unique, and the dashboard opens on the last hour with a stable uid."""
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    board = dashboard()
    assert board["uid"] == "metadata-gateway"
    assert board["time"] == {"from": "now-1h", "to": "now"}
    assert board["refresh"]


def test_dashboard_covers_the_questions_operators_ask() -> None:
    """Cue flow, IVS outcomes, latency, payloads, queue, channels, budget and WebSocket all show."""
    exprs = " ".join(target["expr"] for panel in panels() for target in panel["targets"])
    for metric in (
        "metadata_gateway_cues_received_total",
        "metadata_gateway_cues_delivered_total",
        "metadata_gateway_cues_rejected_total",
        "metadata_gateway_cues_dropped_total",
        "metadata_gateway_put_metadata_requests_total",
        "metadata_gateway_put_metadata_duration_seconds_bucket",
        "metadata_gateway_put_metadata_payload_bytes_bucket",
        "metadata_gateway_cues_per_request_bucket",
        "metadata_gateway_cue_delivery_seconds_bucket",
        "metadata_gateway_queued_cues",
        "metadata_gateway_channels_active",
        "metadata_gateway_account_budget_calls",
        "metadata_gateway_ws_connections",
    ):
        assert metric in exprs, metric


# ---- against the live stack -----------------------------------------------------------------


@pytest.mark.parametrize("expr", panel_queries())
def test_panel_query_returns_data(stack: Stack, expr: str) -> None:
    """The panel's query parses and returns a value after a short load."""
    stack.query_until_data(grafana_expand(expr))


def test_annotation_queries_parse(stack: Stack) -> None:
    """The dashboard's annotation queries are valid PromQL."""
    for annotation in dashboard()["annotations"]["list"]:
        if "expr" in annotation:
            stack.query(grafana_expand(annotation["expr"]))


def test_template_variables_find_the_gateway(stack: Stack) -> None:
    """The $job and $instance pickers list the scraped gateway."""
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"]["query"])
        assert found is not None, variable["name"]
        selector, label = grafana_expand(found.group(1)), found.group(2)
        status, answer = stack.api(f"label/{label}/values", **{"match[]": selector})
        assert status == 200, answer
        assert answer["data"], f"${variable['name']} would list nothing"


def test_queries_name_only_metrics_the_gateway_exports(stack: Stack) -> None:
    """Every metric the dashboard and rules mention is in a gateway's /metrics (a distributed
    replica's for the ownership and Redis figures)."""
    exported: set[str] = set()
    for url in (stack.gateway_url, stack.replicas[0].url):
        status, body = get(f"{url}/metrics")
        assert status == 200
        exported |= {
            sample.name
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }
    texts = [target["expr"] for panel in panels() for target in panel["targets"]]
    texts += [rule["expr"] for rule in rules()]
    # Raw metric names only: not the middle part of a recorded series, level:metric:operations.
    mentioned = set(re.findall(r"(?<![\w:])metadata_gateway_\w+(?![\w:])", " ".join(texts)))
    assert mentioned - exported == set()


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    """Prometheus loaded every rule from the rule files, and each has evaluated cleanly."""
    expected = {rule.get("record") or rule["alert"] for rule in rules()}
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        status, answer = stack.api("rules")
        assert status == 200
        loaded = [rule for group in answer["data"]["groups"] for rule in group["rules"]]
        if all(rule["health"] != "unknown" for rule in loaded) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {rule["name"] for rule in loaded} == expected
    failing = [(rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"]
    assert failing == []


@pytest.mark.parametrize(
    "rule", [pytest.param(rule, id=rule.get("record") or rule["alert"]) for rule in rules()]
)
def test_rule_expression_parses(stack: Stack, rule: dict[str, Any]) -> None:
    """The rule's expression is valid PromQL; a recording rule's also returns data."""
    if "record" in rule:
        stack.query_until_data(rule["record"])
    stack.query(rule["expr"])


def test_rules_and_panels_aggregate_across_replicas(stack: Stack) -> None:
    """With two replicas scraped, the deployment-wide series add them up: together they own every
    partition, each owns only part, and no partition alert fires."""
    (owned,) = stack.query_until_data("job:metadata_gateway_partitions_owned:sum")
    (total,) = stack.query_until_data("job:metadata_gateway_partitions:max")
    assert float(owned["value"][1]) == float(total["value"][1]) == 16
    per_replica = stack.query_until_data("metadata_gateway_partitions_owned")
    assert len(per_replica) == 2
    assert all(0 < float(series["value"][1]) < 16 for series in per_replica)
    (panel,) = [
        target["expr"]
        for panel in panels()
        for target in panel["targets"]
        if panel["title"] == "Partitions owned" and target["refId"] == "B"
    ]
    (summed,) = stack.query_until_data(grafana_expand(panel))
    assert float(summed["value"][1]) == 16
    alerts = stack.query('ALERTS{alertname="MetadataGatewayPartitionsUnowned"}')
    assert alerts == []


def test_gateway_exits_zero_on_sigterm(stack: Stack) -> None:
    """SIGTERM drains the idle gateway and it exits 0 well within its drain deadline (last test)."""
    started = time.monotonic()
    code = stop(stack.gateway, timeout=Settings().drain_timeout + 5)
    assert code == 0, stack.logs["gateway"].read_text()
    assert time.monotonic() - started < Settings().drain_timeout
