"""customId (api-version 2025-03-02-preview) through the SDK client's own pipeline.

azure-communication-identity 1.5.0's model drops customId, so these requests go through
client._identity_service_client.send_request: signed exactly as the SDK signs its own.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from azure.communication.identity import CommunicationTokenScope, CommunicationUserIdentifier

from acs import check_access_token, identity_of, parse_expires_on, pct, send


def create_with_custom_id(client, custom_id, **extra):
    response = send(client, "POST", "/identities", json_body={"customId": custom_id, **extra})
    assert response.status_code == 201, (response.status_code, response.text())
    return response.json()


def test_create_with_a_custom_id_twice_returns_the_same_identity(client, resource_id, custom_id):
    first = create_with_custom_id(client, custom_id)
    second = create_with_custom_id(client, custom_id)

    first_id = first["identity"]["id"]
    assert first_id.startswith(f"8:acs:{resource_id}_"), first_id
    assert second["identity"]["id"] == first_id
    assert first["identity"]["customId"] == custom_id
    assert second["identity"]["customId"] == custom_id
    assert "accessToken" not in first


def test_custom_id_lookup_get_identity_and_delete(client, custom_id):
    identity_id = create_with_custom_id(client, custom_id)["identity"]["id"]

    # Lookup by customId (percent-encoded: it holds '@' and '+').
    looked_up = send(client, "GET", f"/customIds/{pct(custom_id)}")
    assert looked_up.status_code == 200, (looked_up.status_code, looked_up.text())
    found = identity_of(looked_up.json())
    assert found["id"] == identity_id
    assert found.get("customId", custom_id) == custom_id

    # Get identity by id (percent-encoded: it holds ':').
    got = send(client, "GET", f"/identities/{pct(identity_id)}")
    assert got.status_code == 200, (got.status_code, got.text())
    body = identity_of(got.json())
    assert body["id"] == identity_id
    assert body["customId"] == custom_id

    client.delete_user(CommunicationUserIdentifier(identity_id))

    gone = send(client, "GET", f"/customIds/{pct(custom_id)}")
    assert gone.status_code == 404, (gone.status_code, gone.text())
    assert gone.json()["error"]["code"]
    assert send(client, "GET", f"/identities/{pct(identity_id)}").status_code == 404

    # The customId is free again: a create makes a fresh identity.
    fresh = create_with_custom_id(client, custom_id)["identity"]
    assert fresh["id"] != identity_id
    assert fresh["customId"] == custom_id


def test_create_with_a_custom_id_and_a_token(client, resource_id, custom_id):
    before = datetime.now(timezone.utc)
    body = create_with_custom_id(
        client, custom_id, createTokenWithScopes=["chat", "voip.join"], expiresInMinutes=120
    )
    identity_id = body["identity"]["id"]

    class Token:  # the shape check_access_token reads, as the SDK's AccessToken has it
        token = body["accessToken"]["token"]
        expires_on = body["accessToken"]["expiresOn"]

    check_access_token(
        Token,
        user_id=identity_id,
        scopes=["chat", "voip.join"],
        minutes=120,
        resource_id=resource_id,
        issued_after=before,
    )
    # Issuing records lastTokenIssuedAt, which the identity read returns.
    got = identity_of(send(client, "GET", f"/identities/{pct(identity_id)}").json())
    last = parse_expires_on(got["lastTokenIssuedAt"])
    assert before - timedelta(minutes=2) <= last <= datetime.now(timezone.utc) + timedelta(minutes=2)

    # The same customId again: the same identity, and a token for it.
    again = create_with_custom_id(client, custom_id, createTokenWithScopes=["chat"])
    assert again["identity"]["id"] == identity_id
    assert again["accessToken"]["token"]


def test_sdk_tokens_work_for_an_identity_made_by_custom_id(client, resource_id, custom_id):
    identity_id = create_with_custom_id(client, custom_id)["identity"]["id"]
    user = CommunicationUserIdentifier(identity_id)
    before = datetime.now(timezone.utc)
    token = client.get_token(
        user, [CommunicationTokenScope.CHAT_JOIN], token_expires_in=timedelta(minutes=60)
    )
    check_access_token(
        token,
        user_id=identity_id,
        scopes=[CommunicationTokenScope.CHAT_JOIN],
        minutes=60,
        resource_id=resource_id,
        issued_after=before,
    )


def test_concurrent_creates_with_one_custom_id_make_one_identity(make_client, custom_id):
    workers = 10
    clients = [make_client() for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def create(client):
        barrier.wait(timeout=30)
        response = send(client, "POST", "/identities", json_body={"customId": custom_id})
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(create, clients))

    statuses = [status for status, _ in results]
    assert statuses == [201] * workers, results
    ids = {body["identity"]["id"] for _, body in results}
    assert len(ids) == 1, ids
    assert {body["identity"]["customId"] for _, body in results} == {custom_id}
