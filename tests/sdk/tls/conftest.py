"""Fixtures for the SDKs against the local server over HTTPS, the way most ACS code builds
its client: from a connection string, or with a token credential (DefaultAzureCredential).
scripts/test starts `callsign-local --tls` and sets (from its ready file):

    CALLSIGN_CONNECTION_STRING   endpoint=https://127.0.0.1:PORT/;accesskey=...
    CALLSIGN_READY_FILE          the ready file itself (endpoint, connectionString,
                                 devOidcIssuer, identityEndpoint, identityHeader,
                                 certificate): the bearer suite (test_bearer.py) needs it
    REQUESTS_CA_BUNDLE, SSL_CERT_FILE   the server's self-signed certificate

With CALLSIGN_READY_FILE alone the connection string comes from the ready file, and the
two CA variables, when unset, from its `certificate`.
"""

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import requests

# The helpers of the plain-HTTP SDK suite (JWT decoding, requests signed through the SDK's
# own pipeline): tests/sdk/python/acs.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def _read_ready_file():
    path = os.environ.get("CALLSIGN_READY_FILE", "").strip()
    if not path:
        return None
    with open(path, encoding="utf-8") as file:
        ready = json.load(file)
    assert ready["endpoint"].startswith("https://"), (
        f"{path}: the server does not serve HTTPS (start it with --tls or CALLSIGN_TLS=1)"
    )
    return ready


@pytest.fixture(scope="session")
def ready():
    """The server's ready file (CALLSIGN_READY_FILE)."""
    value = _read_ready_file()
    if value is None:
        raise pytest.UsageError(
            "CALLSIGN_READY_FILE is not set: run this suite through scripts/test, or point it "
            "at the ready file of a running `callsign-local --tls` (CALLSIGN_READY_FILE=...)"
        )
    return value


@pytest.fixture(scope="session", autouse=True)
def _trust_the_server_certificate():
    """The CA variables from the ready file's certificate, when the caller set none."""
    ready = _read_ready_file()
    if ready is None or not ready.get("certificate"):
        yield
        return
    added = [name for name in CA_VARIABLES if not os.environ.get(name)]
    for name in added:
        os.environ[name] = ready["certificate"]
    yield
    for name in added:
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def connection_string():
    value = os.environ.get("CALLSIGN_CONNECTION_STRING", "").strip()
    if not value:
        ready = _read_ready_file()
        value = (ready or {}).get("connectionString", "")
    if not value:
        raise pytest.UsageError(
            "CALLSIGN_CONNECTION_STRING (or CALLSIGN_READY_FILE) is not set: run this suite "
            "through scripts/test, which starts callsign-local --tls"
        )
    assert value.startswith("endpoint=https://"), value
    return value


@pytest.fixture(scope="session")
def endpoint(ready):
    return ready["endpoint"].rstrip("/")


@pytest.fixture(scope="session")
def dev_issuer(ready):
    """The server's development OIDC issuer (local/src/dev_oidc.rs)."""
    return DevIssuer(ready)


@pytest.fixture
def managed_identity_env(ready, monkeypatch):
    """The environment of an App Service app with a managed identity, pointed at the
    server's managed-identity endpoint: what DefaultAzureCredential reads, and nothing else
    (AZURE_TOKEN_CREDENTIALS keeps it from trying developer tools)."""
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IDENTITY_SERVER_THUMBPRINT",
        "IMDS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", ready["identityEndpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", ready["identityHeader"])
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")


@pytest.fixture
def custom_id():
    """A customId nothing else has used."""
    return f"bearer-{uuid.uuid4().hex}@contoso.example"


class DevIssuer:
    """Tokens from the development issuer: admin bearers, Teams users' Entra tokens."""

    def __init__(self, ready):
        self.endpoint = ready["endpoint"].rstrip("/")
        self.issuer = ready["devOidcIssuer"]
        self._identity_header = ready["identityHeader"]

    def _post(self, route, body, **headers):
        response = requests.post(f"{self.issuer}/{route}", json=body, headers=headers, timeout=10)
        assert response.status_code == 200, (route, response.status_code, response.text)
        return response.json()["access_token"]

    def admin_token(self, roles, **claims):
        """An admin caller's access token; claims: aud, sub, expiresIn (seconds)."""
        return self._post(
            "admin-token", {"roles": roles, **claims}, **{"X-IDENTITY-HEADER": self._identity_header}
        )

    def teams_token(self, oid, appid, **claims):
        """A Teams user's Entra token; claims: scp, aud, tid, expiresIn (seconds)."""
        return self._post("teams-token", {"oid": oid, "appid": appid, **claims})

    def jwks(self):
        response = requests.get(f"{self.issuer}/jwks.json", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()
