"""The operator's access-key regeneration (`callsign-local regenerate-access-key`, what
scripts/regenerate-access-key runs) against a running server on DynamoDB Local + moto:
the old key's tokens are revoked at once, the other key's are not, the new key works,
and `sync-access-keys` / `access-key-fingerprints` agree with the secret.

scripts/test runs it after the dynamodb SDK suite, with the server's environment
(table, secret names, AWS endpoints) and:
    CALLSIGN_ENDPOINT, CALLSIGN_ACCESS_KEY   the running server and its primary key
    CALLSIGN_LOCAL_BIN                       the callsign-local binary
"""

import hmac
import json
import os
import subprocess
import sys
import time

import boto3
import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from acs import send  # noqa: E402


def env(name):
    value = os.environ.get(name, "").strip()
    if not value:
        raise pytest.UsageError(f"{name} is not set: run this suite through scripts/test")
    return value


def cli(*args):
    done = subprocess.run(
        [env("CALLSIGN_LOCAL_BIN"), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def secret():
    client = boto3.client("secretsmanager")
    value = client.get_secret_value(
        SecretId=env("CALLSIGN_ACCESS_KEYS_SECRET_ID"), VersionStage="AWSCURRENT"
    )
    return json.loads(value["SecretString"])


def same(a, b):
    """Compares keys without pytest printing them in a failure (logs are scanned)."""
    return hmac.compare_digest(a.encode(), b.encode())


def client_for(key):
    return CommunicationIdentityClient(env("CALLSIGN_ENDPOINT"), AzureKeyCredential(key))


def introspect(client, token):
    response = send(client, "POST", "/tokens/:introspect", json_body={"token": token})
    assert response.status_code == 200, response.text()
    return response.json()


def fingerprints():
    return json.loads(cli("access-key-fingerprints"))


def test_regenerating_the_primary_revokes_its_tokens_and_no_others():
    primary, secondary = env("CALLSIGN_ACCESS_KEY"), secret()["secondaryKey"]
    by_primary, by_secondary = client_for(primary), client_for(secondary)
    _, primary_token = by_primary.create_user_and_token(["chat"])
    _, secondary_token = by_secondary.create_user_and_token(["voip"])
    assert introspect(by_secondary, primary_token.token)["active"] is True
    before = fingerprints()
    generation = before["generation"] if before else 0

    new_primary = cli("regenerate-access-key", "primary").splitlines()[-1]
    assert new_primary and not same(new_primary, primary) and not same(new_primary, secondary)
    assert same(secret()["primaryKey"], new_primary), "the secret holds the new key"

    # Introspection sees it at once; the other key's tokens live on.
    revoked = introspect(by_secondary, primary_token.token)
    assert revoked == {"active": False, "reason": "credential_revoked"}
    assert introspect(by_secondary, secondary_token.token)["active"] is True
    listed = fingerprints()
    assert listed["generation"] == generation + 1
    assert len(listed["fingerprints"]) == 2

    # The server picks the new key up within its key cache TTL (1 s here).
    deadline = time.monotonic() + 30
    while True:
        try:
            _, fresh_token = client_for(new_primary).create_user_and_token(["chat"])
            break
        except HttpResponseError as error:
            assert error.status_code == 401, error
            assert time.monotonic() < deadline, "the new primary key never authenticated"
            time.sleep(0.5)
    assert introspect(by_secondary, fresh_token.token)["active"] is True
    with pytest.raises(HttpResponseError) as refused:
        by_primary.create_user()
    assert refused.value.status_code == 401

    # A sync changes nothing now, and says which generation it settled.
    assert str(generation + 1) in cli("sync-access-keys")
    assert fingerprints() == listed
