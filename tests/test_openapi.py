"""The OpenAPI 3.1 document: valid, served as shipped, and naming every route the app has."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest
from gateway_harness import running_gateway
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from metadata_gateway.config import Settings
from metadata_gateway.local_ivs import LocalIvs
from metadata_gateway.running.app import create_app

OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json"}
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def shipped_spec() -> dict[str, Any]:
    text = resources.files("metadata_gateway").joinpath("openapi.json").read_text()
    spec: dict[str, Any] = json.loads(text)
    return spec


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document as the package ships it."""
    return shipped_spec()


async def test_served_spec_is_valid_openapi_3_1_and_is_the_shipped_file(
    local_ivs: LocalIvs,
) -> None:
    """GET /openapi.json answers the packaged file, which validates as OpenAPI 3.1."""
    async with (
        running_gateway(local_ivs) as gw,
        gw.http.get(f"{gw.url}/openapi.json") as response,
    ):
        assert response.status == 200
        assert response.content_type == "application/json"
        served = json.loads(await response.read())
    assert served == shipped_spec()
    assert served["openapi"].startswith("3.1.")
    validate(served, cls=OpenAPIV31SpecValidator)


def test_every_schema_is_valid_json_schema_2020_12(spec: dict[str, Any]) -> None:
    """Each component schema passes the JSON Schema 2020-12 meta-schema (OpenAPI 3.1's dialect)."""
    for name, schema in spec["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:  # name the schema that is wrong
            raise AssertionError(f"components.schemas.{name}: {exc}") from exc


def test_spec_and_router_name_the_same_operations(spec: dict[str, Any]) -> None:
    """Every route the app serves is in the spec and every operation in the spec is served."""
    app = create_app(Settings())
    served = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        assert route.resource is not None
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical)
        served.add((route.method, path))
    assert served == set(operations(spec))


def test_open_paths_need_no_token_and_the_rest_need_bearer_auth(spec: dict[str, Any]) -> None:
    """Health, readiness, metrics and the spec are open; every /v1 operation needs bearerAuth."""
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for (method, path), operation in operations(spec).items():
        security = operation.get("security", spec["security"])
        if path in OPEN_PATHS:
            assert security == [], (method, path)
        else:
            assert security == [{"bearerAuth": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def resolved(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in response:
        return response
    found: dict[str, Any] = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return found


def test_scoped_operations_document_forbidden(spec: dict[str, Any]) -> None:
    """Posting and cancelling, which act on a channel, document 403 forbidden."""
    for key in [("POST", "/v1/cues"), ("DELETE", "/v1/cues/{id}")]:
        response = resolved(spec, operations(spec)[key]["responses"]["403"])
        assert "forbidden" in json.dumps(response), key


def test_cue_intake_documents_429_with_retry_after(spec: dict[str, Any]) -> None:
    """POST /v1/cues documents 429 queue_full and client_rate_limited with Retry-After."""
    response = resolved(spec, operations(spec)[("POST", "/v1/cues")]["responses"]["429"])
    assert "Retry-After" in response["headers"]
    text = json.dumps(response)
    assert "queue_full" in text
    assert "client_rate_limited" in text


def test_every_error_status_answers_the_error_object(spec: dict[str, Any]) -> None:
    """Each 4xx and 5xx with a JSON body is `{"error": {"code", "message", ...}}` (bar /readyz)."""
    error_ref = "#/components/schemas/Error"
    for (method, path), operation in operations(spec).items():
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")) or path == "/readyz":
                continue
            content = resolved(spec, response)["content"]
            assert error_ref in json.dumps(content), (method, path, status)
