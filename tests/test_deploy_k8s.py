"""The Kubernetes base: valid for current Kubernetes, and in step with the gateway's settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from metadata_gateway.config import Settings, load_settings
from metadata_gateway.ingress.auth import hash_token, new_token
from metadata_gateway.ingress.http_api import routes

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "k8s" / "base"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
GATEWAY_CONFIG = BASE / "gateway.toml"
# The oldest minor still commonly offered by managed Kubernetes, and the newest the
# kubernetes-validate package knows.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CUSTOM_KINDS = {"ServiceMonitor"}  # no schema in kubernetes-validate; checked below instead
# After the drain deadline the gateway still closes WebSocket sessions (2 s each, at once) and
# its HTTP server; SIGKILL must not come before that.
SHUTDOWN_MARGIN_S = 10
MIB = 1024 * 1024
# The fields of a ServiceMonitor this base uses, as the Prometheus Operator's CRD types them.
DURATION = r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        },
                    },
                },
            },
        },
    },
}


def kustomization() -> dict[str, Any]:
    """The base's kustomization.yaml."""
    data: dict[str, Any] = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return data


def manifests() -> list[dict[str, Any]]:
    """The objects the base makes: its resources, and the ConfigMaps its generator makes."""
    objects: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        objects.extend(d for d in yaml.safe_load_all((BASE / name).read_text()) if d)
    for generator in kustomization().get("configMapGenerator", []):
        data = {Path(file).name: (BASE / file).read_text() for file in generator["files"]}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return objects


def the(kind: str) -> dict[str, Any]:
    """The one object of `kind`."""
    (found,) = (m for m in manifests() if m["kind"] == kind)
    return found


def pod_spec() -> dict[str, Any]:
    """The Deployment's pod spec."""
    spec: dict[str, Any] = the("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    """The gateway container."""
    (found,) = pod_spec()["containers"]
    return dict(found)


def container_env() -> dict[str, str]:
    """The container's plain environment variables."""
    return {item["name"]: item["value"] for item in container().get("env", [])}


def volume_holding(path: str) -> dict[str, Any]:
    """The pod volume mounted at the directory that holds `path`."""
    directory = PurePosixPath(path).parent
    mounts = {PurePosixPath(m["mountPath"]): m["name"] for m in container()["volumeMounts"]}
    (volume,) = (v for v in pod_spec()["volumes"] if v["name"] == mounts[directory])
    return dict(volume)


def deployed_settings(tmp_path: Path) -> Settings:
    """The settings the container starts with: its ConfigMap file and its environment.

    The tokens file lives in a Secret outside the repository and sets nothing but tokens.
    """
    env = container_env()
    config_path = PurePosixPath(env["MG_CONFIG"])
    config_map = the("ConfigMap")
    assert volume_holding(env["MG_CONFIG"])["configMap"]["name"] == config_map["metadata"]["name"]
    local = tmp_path / config_path.name
    local.write_text(config_map["data"][config_path.name])
    env = {name: value for name, value in env.items() if name != "MG_TOKENS_FILE"}
    return load_settings(environ={**env, "MG_CONFIG": str(local)})


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (Mi or Gi) in MiB."""
    found = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert found is not None, f"write {quantity!r} in Mi or Gi"
    return int(found.group(1)) * (1024 if found.group(2) == "Gi" else 1)


def probe_port(probe: dict[str, Any]) -> int:
    """The container port number a probe targets."""
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    port = probe["httpGet"]["port"]
    return int(ports[port] if isinstance(port, str) else port)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_kubernetes(version: str) -> None:
    """Every built-in object passes kubernetes-validate's strict schema for that version."""
    for manifest in manifests():
        if manifest["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_service_monitor_is_well_formed() -> None:
    """The ServiceMonitor has the shape the Prometheus Operator's CRD accepts."""
    jsonschema.validate(the("ServiceMonitor"), SERVICE_MONITOR_SCHEMA)


def test_kustomization_lists_every_manifest_and_nothing_missing() -> None:
    """Each YAML file of the base is a resource or generator input, and each exists."""
    listed = set(kustomization()["resources"])
    for generator in kustomization()["configMapGenerator"]:
        listed.update(generator["files"])
    present = {p.name for p in BASE.iterdir() if p.name != "kustomization.yaml"}
    assert listed == present


def test_kustomize_builds_the_base() -> None:
    """`kubectl kustomize` renders the same kinds and names (where kubectl is installed)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    ours = {(m["kind"], m["metadata"]["name"]) for m in manifests()}
    # The generator appends a hash of the contents to the ConfigMap's name (and its references).
    assert {(kind, re.sub(r"-[a-z0-9]{10}$", "", name)) for kind, name in built} == ours


def test_one_replica_and_never_two_pods_at_once() -> None:
    """One replica per account budget, and Recreate so a rollout never overlaps two pods."""
    spec = the("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"


def test_grace_period_outlasts_the_drain(tmp_path: Path) -> None:
    """SIGKILL comes only after the drain deadline plus time to close connections."""
    settings = deployed_settings(tmp_path)
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace >= settings.drain_timeout + SHUTDOWN_MARGIN_S


def test_probes_and_ports_match_the_gateway(tmp_path: Path) -> None:
    """Probes hit /healthz and /readyz on the port the gateway listens on, as the app routes."""
    settings = deployed_settings(tmp_path)
    (port,) = container()["ports"]
    assert port["containerPort"] == settings.port
    paths = {route.path for route in routes if hasattr(route, "path")}
    live, ready, startup = (
        container()[name] for name in ("livenessProbe", "readinessProbe", "startupProbe")
    )
    assert live["httpGet"]["path"] == "/healthz"
    assert startup["httpGet"]["path"] == "/healthz"
    assert ready["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz"} <= paths
    for probe in (live, ready, startup):
        assert probe_port(probe) == settings.port


def test_readiness_notices_the_drain_before_it_ends(tmp_path: Path) -> None:
    """/readyz turns 503 on SIGTERM; the probe sees it while the gateway is still draining."""
    settings = deployed_settings(tmp_path)
    ready = container()["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] < settings.drain_timeout


def test_service_and_monitor_reach_the_pod() -> None:
    """Selectors agree, the Service targets the container port, the monitor the Service port."""
    pod_labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = the("Service")
    monitor = the("ServiceMonitor")
    for selector in (
        the("Deployment")["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        the("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    monitored = monitor["spec"]["selector"]["matchLabels"]
    assert monitored.items() <= service["metadata"]["labels"].items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in {p["name"] for p in container()["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {service_port["name"]}
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}


def test_service_name_is_the_job_the_alerts_select() -> None:
    """The Prometheus Operator names the job after the Service; the rules expect that job."""
    assert "jobLabel" not in the("ServiceMonitor")["spec"]
    jobs = set()
    for path in RULES_DIR.glob("*.yml"):
        jobs.update(re.findall(r'job="([^"]+)"', path.read_text()))
    assert jobs == {the("Service")["metadata"]["name"]}


def test_runs_non_root_on_a_read_only_root_filesystem() -> None:
    """Non-root, no privilege escalation, no capabilities, read-only root, writable /tmp."""
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_resources_hold_the_queue_bounds(tmp_path: Path) -> None:
    """CPU and memory are requested, and the memory limit holds a full queue with room to spare."""
    settings = deployed_settings(tmp_path)
    resources = container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "cpu" not in resources.get("limits", {}), "CPU throttling would delay cues"
    limit = mebibytes(resources["limits"]["memory"])
    assert limit >= mebibytes(resources["requests"]["memory"])
    # Queued bytes are the cues' payload items; Python objects around them cost about as much.
    assert limit >= 2 * settings.total_max_bytes / MIB + 256


def test_credentials_come_from_irsa_or_an_optional_secret() -> None:
    """The ServiceAccount carries the IRSA annotation; the Secret of AWS keys may be absent."""
    account = the("ServiceAccount")
    assert pod_spec()["serviceAccountName"] == account["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    (source,) = container()["envFrom"]
    assert source["secretRef"]["optional"] is True
    assert not any(m["kind"] == "Secret" for m in manifests()), "no secrets in the repository"


def test_api_tokens_come_from_a_required_secret(tmp_path: Path) -> None:
    """MG_TOKENS_FILE names the key of a Secret that must exist, and such a file loads."""
    path = container_env()["MG_TOKENS_FILE"]
    secret = volume_holding(path)["secret"]
    assert secret.get("optional", False) is False
    assert [item["path"] for item in secret["items"]] == [PurePosixPath(path).name]
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[tokens]]\nname = "quiz-backend"\nsha256 = "{hash_token(new_token())}"\n'
        'channels = ["*"]\nrate = 50\n'
    )
    settings = load_settings(
        environ={"MG_CONFIG": str(GATEWAY_CONFIG), "MG_TOKENS_FILE": str(tokens)}
    )
    assert [token.name for token in settings.tokens] == ["quiz-backend"]
    assert settings.insecure_no_auth is False
