"""The OpenAPI contract (openapi.yaml at the repo root) against the routes the server serves.

* openapi.yaml is a valid OpenAPI 3.1 document (openapi-spec-validator);
* its operations, as (METHOD, path) pairs, are exactly the routes of the route table
  (`callsign-local routes --json`): nothing served is undocumented, nothing documented is
  not served.
"""

from pathlib import Path

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from route_table import served_routes

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi.yaml"
# The operation keys a Path Item may hold (OpenAPI 3.1 §4.8.9).
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def documented_routes():
    with SPEC.open(encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    return {
        (method.upper(), path)
        for path, item in (spec.get("paths") or {}).items()
        for method in item
        if method in HTTP_METHODS
    }


def test_openapi_document_is_valid_openapi_3_1():
    document, base_uri = read_from_filename(str(SPEC))
    assert str(document.get("openapi", "")).startswith("3.1"), "openapi.yaml must be OpenAPI 3.1"
    validate(document, base_uri=base_uri)


def test_every_served_route_is_documented():
    missing = served_routes() - documented_routes()
    assert not missing, f"served but not in openapi.yaml: {sorted(missing)}"


def test_every_documented_route_is_served():
    extra = documented_routes() - served_routes()
    assert not extra, f"in openapi.yaml but not served: {sorted(extra)}"


def test_operation_ids_are_unique():
    with SPEC.open(encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    ids = [
        op.get("operationId")
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    assert None not in ids, "every operation needs an operationId"
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {ids}"
