"""Prometheus rules: promtool checks and unit tests, and the conventions every rule follows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
UNIT_TESTS = PROMETHEUS_DIR / "tests" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
GATEWAY_CONFIG = ROOT / "deploy" / "k8s" / "base" / "gateway.toml"
SEVERITIES = {"critical", "warning"}
# level:metric:operations, https://prometheus.io/docs/practices/rules/
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")


def require(binary: str) -> str:
    """The path of `binary`; skip without it, but fail in CI, which installs it."""
    path = shutil.which(binary)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is missing; .ci/run installs Debian's prometheus package")
        pytest.skip(f"{binary} is not installed (apt-get install prometheus)")
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool and return what it said."""
    return subprocess.run(
        [require("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def rules() -> list[dict[str, Any]]:
    """Every rule of every rule file."""
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def alerts() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for rule in rules() if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_promtool_accepts_the_rule_files() -> None:
    """`promtool check rules` finds every rule file valid."""
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_demo_config() -> None:
    """`promtool check config` accepts the Compose demo's Prometheus config and its rules."""
    result = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules` fires each alert from synthetic series, and keeps quiet cases quiet."""
    result = promtool("test", "rules", UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_fire_every_alert() -> None:
    """Every alert has a unit test in which it fires, and one moment in which it does not."""
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - fired == set()
    assert names - silent == set()


def test_unit_tests_load_every_rule_file() -> None:
    """The unit tests run against the same rule files Prometheus loads."""
    listed = yaml.safe_load(UNIT_TESTS.read_text())["rule_files"]
    assert sorted((UNIT_TESTS.parent / name).resolve() for name in listed) == RULE_FILES


def test_alerts_carry_severity_summary_description_and_runbook() -> None:
    """Each alert is labelled with a known severity and annotated for the person it pages."""
    for alert in alerts():
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}
        assert all(value.strip() for value in alert["annotations"].values()), alert["alert"]


def test_runbook_urls_point_at_sections_of_the_runbook() -> None:
    """Each runbook_url names docs/runbook.md and an anchor that its headings produce."""
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    for alert in alerts():
        url = urlsplit(alert["annotations"]["runbook_url"])
        assert url.scheme == "https", alert["alert"]
        assert url.path.endswith("/docs/runbook.md"), alert["alert"]
        assert url.fragment == github_anchor(alert["alert"]), alert["alert"]
        assert url.fragment in anchors, f"docs/runbook.md has no section {alert['alert']}"


def test_recording_rules_are_named_level_metric_operations() -> None:
    """Recorded series follow the level:metric:operations convention and are defined once."""
    records = [rule["record"] for rule in rules() if "record" in rule]
    assert records
    assert [name for name in records if not RECORD_NAME.match(name)] == []
    assert len(records) == len(set(records))


def test_alerts_read_only_recorded_series_that_exist() -> None:
    """Every recorded series an alert mentions is defined by a recording rule."""
    records = {rule["record"] for rule in rules() if "record" in rule}
    for alert in alerts():
        used = set(re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", alert["expr"]))
        assert used <= records, (alert["alert"], used - records)


def test_queue_alert_divides_by_the_bounds_the_gateway_exports() -> None:
    """The queue alert uses the gateway's own bound gauges, not numbers copied from settings."""
    (alert,) = (a for a in alerts() if a["alert"] == "MetadataGatewayQueueNearLimit")
    assert "metadata_gateway_queued_cues / metadata_gateway_queue_limit_cues" in alert["expr"]
    assert "metadata_gateway_queued_bytes / metadata_gateway_queue_limit_bytes" in alert["expr"]
