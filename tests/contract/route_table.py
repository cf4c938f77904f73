"""The route table as the binary serves it (`callsign-local routes --json`), and the
metrics it emits (`callsign-local metrics --json`): the sources the OpenAPI and template
checks compare against.

Needs the built binary: $CARGO_TARGET_DIR/debug/callsign-local (default target/), or
CALLSIGN_LOCAL_BIN naming it. scripts/test runs these checks right after the build.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def local_binary():
    explicit = os.environ.get("CALLSIGN_LOCAL_BIN", "").strip()
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", "").strip() or "target")
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug" / "callsign-local"


def route_table():
    """[{method, path, operation, access, function}], in the table's order."""
    binary = local_binary()
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: build the workspace first (cargo build --workspace)")
    out = subprocess.run(
        [str(binary), "routes", "--json"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    table = json.loads(out)
    assert table, f"`{binary} routes --json` printed no routes"
    return table


def documented_metrics():
    """{name: {dimension besides Function: [its values]}} of the metrics the functions emit."""
    out = subprocess.run(
        [str(local_binary()), "metrics", "--json"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return {metric["name"]: metric["values"] for metric in json.loads(out)}


def served_routes():
    return {(route["method"], route["path"]) for route in route_table()}
