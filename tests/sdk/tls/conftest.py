"""Fixtures for the SDKs against the local server over HTTPS, the way most ACS code builds
its client: from a connection string. scripts/test starts `callsign-local --tls` and
sets (from its ready file):

    CALLSIGN_CONNECTION_STRING   endpoint=https://127.0.0.1:PORT/;accesskey=...
    REQUESTS_CA_BUNDLE, SSL_CERT_FILE   the server's self-signed certificate
"""

import os

import pytest


@pytest.fixture(scope="session")
def connection_string():
    value = os.environ.get("CALLSIGN_CONNECTION_STRING", "").strip()
    if not value:
        raise pytest.UsageError(
            "CALLSIGN_CONNECTION_STRING is not set: run this suite through scripts/test, "
            "which starts callsign-local --tls"
        )
    assert value.startswith("endpoint=https://"), value
    return value
