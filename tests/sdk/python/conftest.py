"""Fixtures for driving the official azure-communication-identity SDK against callsign.

Environment (scripts/test sets it from callsign-local's ready file):
    CALLSIGN_ENDPOINT      e.g. http://127.0.0.1:PORT
    CALLSIGN_ACCESS_KEY    base64 access key of the server
    CALLSIGN_RESOURCE_ID   the deployment's resource id (a GUID)
"""

import os
import uuid

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.credentials import AzureKeyCredential


def _required_env(name):
    value = os.environ.get(name, "").strip()
    if not value:
        raise pytest.UsageError(
            f"{name} is not set: run this suite through scripts/test, or set "
            "CALLSIGN_ENDPOINT, CALLSIGN_ACCESS_KEY and CALLSIGN_RESOURCE_ID for a running server"
        )
    return value


@pytest.fixture(scope="session")
def endpoint():
    return _required_env("CALLSIGN_ENDPOINT").rstrip("/")


@pytest.fixture(scope="session")
def access_key():
    return _required_env("CALLSIGN_ACCESS_KEY")


@pytest.fixture(scope="session")
def resource_id():
    return _required_env("CALLSIGN_RESOURCE_ID")


@pytest.fixture(scope="session")
def make_client(endpoint, access_key):
    """Builds a fresh client (one per thread in the concurrency tests)."""

    def make(key=None):
        return CommunicationIdentityClient(endpoint, AzureKeyCredential(key or access_key))

    return make


@pytest.fixture(scope="session")
def client(make_client):
    return make_client()


@pytest.fixture(scope="session")
def run_id():
    """Unique per run, so the suite can run many times against one store."""
    return uuid.uuid4().hex


@pytest.fixture
def custom_id(run_id, request):
    """A customId no other test (nor an earlier run) has used; '@' and '+' exercise
    percent-encoding in paths."""
    test = request.node.name.replace("[", "-").replace("]", "")
    return f"{test}+{run_id[:12]}-{uuid.uuid4().hex[:8]}@contoso.example"
