"""The distributed overlay: several gateway replicas and the Redis they share."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

OVERLAY = Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "overlays" / "distributed"


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_overlay_patch_runs_several_replicas_against_redis() -> None:
    """The overlay's Deployment patch asks for at least 2 replicas, sets MG_REDIS_URL, and names
    each replica after its pod (unique, and readable in channel views)."""
    (patch,) = _documents((OVERLAY / "deployment-patch.yaml").read_text())
    assert patch["spec"]["replicas"] >= 2
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MG_REDIS_URL"].startswith("redis://metadata-gateway-redis:")
    assert env["MG_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_overlay_redis_keeps_an_append_only_file() -> None:
    """The overlay's Redis persists with AOF and never evicts keys (cues are never dropped
    silently)."""
    docs = _documents((OVERLAY / "redis.yaml").read_text())
    (redis,) = [d for d in docs if d["kind"] == "StatefulSet"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"


def test_kustomize_builds_the_distributed_overlay() -> None:
    """`kubectl kustomize` renders the overlay with 3 gateway replicas, rolling updates and a
    Redis Service the URL names (where kubectl is installed)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _documents(built)}
    deployment = docs[("Deployment", "metadata-gateway")]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert ("Service", "metadata-gateway-redis") in docs
    assert ("StatefulSet", "metadata-gateway-redis") in docs
    assert docs[("PodDisruptionBudget", "metadata-gateway")]["spec"]["minAvailable"] == 2
