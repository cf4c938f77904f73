"""callsign in two emulated regions (docs/multi-region.md), through the official ACS SDK
client: two DynamoDB Local instances, the replicator between them, a callsign-local
server per region.

    DYNAMODB_ENDPOINT=… DYNAMODB_ENDPOINT_B=… MOTO_ENDPOINT=… CALLSIGN_LOCAL_BIN=… \\
        pytest tests/multiregion/test_two_regions.py
"""

import json
import os
import sys
import threading
import urllib.request
import uuid

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sdk", "python"))
from acs import identity_of, pct, send  # noqa: E402

from regions import REGION_A, REGION_B, TABLE, TwoRegions  # noqa: E402

CHAT = [CommunicationTokenScope.CHAT]


@pytest.fixture
def regions(tmp_path):
    running = TwoRegions(str(tmp_path))
    yield running
    running.stop()


def client(regions, region):
    server = regions.server(region)
    # No SDK retries: a test sees each answer as the server gives it.
    return CommunicationIdentityClient(server.endpoint, AzureKeyCredential(server.access_key),
                                       retry_total=0)


def create_with_custom_id(identity_client, custom_id):
    return send(identity_client, "POST", "/identities", json_body={"customId": custom_id})


def introspect(identity_client, token):
    response = send(identity_client, "POST", "/tokens/:introspect", json_body={"token": token})
    assert response.status_code == 200, response.text()
    return response.json()["active"]


def converge(regions):
    assert regions.replicator.wait_converged(), "replication did not settle"


def identities_with(regions, custom_id):
    """The identity items holding `custom_id`, per region, read from the replicas."""
    found = {}
    for region in (regions.a, regions.b):
        db = region.client("dynamodb")
        items, start = [], {}
        while True:
            page = db.scan(TableName=TABLE, ConsistentRead=True,
                           FilterExpression="begins_with(pk, :id) AND customId = :c",
                           ExpressionAttributeValues={":id": {"S": "ID#"},
                                                      ":c": {"S": custom_id}}, **start)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        found[region.name] = sorted(item["id"]["S"] for item in items)
    return found


def test_concurrent_creates_in_both_regions_with_one_custom_id_make_one_identity(regions):
    clients = {r: client(regions, r) for r in (REGION_A, REGION_B)}
    custom_ids = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    answers = {c: [] for c in custom_ids}
    failures = []
    start = threading.Barrier(len(custom_ids) * 4)

    def create(region, custom_id):
        start.wait()
        try:
            response = create_with_custom_id(clients[region], custom_id)
            assert response.status_code in (200, 201), response.text()
            answers[custom_id].append(identity_of(response.json())["id"])
        except Exception as e:  # reported below
            failures.append(repr(e))

    threads = [threading.Thread(target=create, args=(region, c))
               for c in custom_ids for region in (REGION_A, REGION_B, REGION_A, REGION_B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    converge(regions)
    for custom_id in custom_ids:
        ids = set(answers[custom_id])
        assert len(ids) == 1, f"{custom_id}: {ids}"
        (the_id,) = ids
        # Both replicas hold exactly that identity, and both regions look it up.
        assert identities_with(regions, custom_id) == {REGION_A: [the_id], REGION_B: [the_id]}
        for identity_client in clients.values():
            found = send(identity_client, "GET", f"/customIds/{pct(custom_id)}")
            assert found.status_code == 200, found.text()
            assert identity_of(found.json())["id"] == the_id


def test_a_token_from_one_region_verifies_and_revoke_and_delete_propagate(regions):
    a, b = client(regions, REGION_A), client(regions, REGION_B)
    user, token_a = a.create_user_and_token(CHAT)
    converge(regions)
    # A token issued in A is active at B's introspection and authorizer, and B issues for
    # A's identity.
    assert introspect(b, token_a.token)
    assert regions.authorize(REGION_B, token_a.token)
    token_b = b.get_token(user, CHAT)
    assert introspect(a, token_b.token)
    assert regions.authorize(REGION_A, token_b.token)

    # A revoke sent to B is written in the identity's home (A) and reaches both.
    b.revoke_tokens(user)
    converge(regions)
    for identity_client in (a, b):
        assert not introspect(identity_client, token_a.token)
        assert not introspect(identity_client, token_b.token)
    for region in (REGION_A, REGION_B):
        assert not regions.authorize(region, token_a.token)
        assert not regions.authorize(region, token_b.token)
    after = b.get_token(user, CHAT)
    assert introspect(a, after.token) and introspect(b, after.token)

    # A delete sent to B: gone in both regions, its tokens too.
    b.delete_user(user)
    converge(regions)
    for identity_client in (a, b):
        with pytest.raises(ResourceNotFoundError):
            identity_client.get_token(user, CHAT)
        assert not introspect(identity_client, after.token)

    # A customId identity deleted in one region is gone, and its customId free, in both.
    custom_id = f"user-{uuid.uuid4().hex[:8]}"
    first = identity_of(create_with_custom_id(a, custom_id).json())["id"]
    converge(regions)
    assert send(b, "DELETE", f"/identities/{first}").status_code == 204
    converge(regions)
    for identity_client in (a, b):
        assert send(identity_client, "GET", f"/customIds/{pct(custom_id)}").status_code == 404
    again = identity_of(create_with_custom_id(b, custom_id).json())["id"]
    assert again != first
    converge(regions)
    assert identities_with(regions, custom_id) == {REGION_A: [again], REGION_B: [again]}


def test_a_partition_then_healing_loses_nothing(regions):
    a, b = client(regions, REGION_A), client(regions, REGION_B)
    before = a.create_user()
    converge(regions)
    placement_probe = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(12)]

    regions.partition()
    made = {REGION_A: [a.create_user()], REGION_B: [b.create_user()]}
    tokens = {REGION_A: a.get_token(made[REGION_A][0], CHAT).token,
              REGION_B: b.get_token(made[REGION_B][0], CHAT).token}
    # Each region keeps issuing for an identity made before the partition.
    before_tokens = [a.get_token(before, CHAT).token, b.get_token(before, CHAT).token]
    a.revoke_tokens(before)  # homed in A: A can revoke it
    # B has not seen the revoke: it still issues from the old epoch. Those tokens are
    # revoked once the revoke arrives (over-revocation within the lag, never under).
    before_tokens.append(b.get_token(before, CHAT).token)
    # customIds: created where they are homed; elsewhere 503 until the partition heals.
    by_custom_id = {}
    refused = {REGION_A: 0, REGION_B: 0}
    for custom_id in placement_probe:
        for region, identity_client in ((REGION_A, a), (REGION_B, b)):
            response = create_with_custom_id(identity_client, custom_id)
            if response.status_code in (200, 201):
                by_custom_id.setdefault(custom_id, set()).add(identity_of(response.json())["id"])
            else:
                assert response.status_code == 503, response.text()
                assert response.json()["error"]["code"] == "ServiceUnavailable"
                assert response.headers.get("Retry-After")
                refused[region] += 1
    # Every customId was created exactly once, in its home; the other region refused it.
    assert sorted(by_custom_id) == sorted(placement_probe)
    assert all(len(ids) == 1 for ids in by_custom_id.values())
    assert refused[REGION_A] + refused[REGION_B] == len(placement_probe)

    regions.heal()
    converge(regions)
    for identity_client in (a, b):
        for region in (REGION_A, REGION_B):
            for user in made[region]:
                assert identity_client.get_token(user, CHAT).token
            assert introspect(identity_client, tokens[region])
        for token in before_tokens:
            assert not introspect(identity_client, token)  # the revoke in A reached B
        for custom_id, ids in by_custom_id.items():
            found = send(identity_client, "GET", f"/customIds/{pct(custom_id)}")
            assert found.status_code == 200, found.text()
            assert {identity_of(found.json())["id"]} == ids
    for custom_id, ids in by_custom_id.items():
        assert identities_with(regions, custom_id) == {REGION_A: sorted(ids),
                                                        REGION_B: sorted(ids)}


def test_with_a_region_down_the_other_keeps_issuing_for_existing_identities(regions):
    a, b = client(regions, REGION_A), client(regions, REGION_B)
    users = [a.create_user() for _ in range(3)] + [b.create_user() for _ in range(3)]
    custom_ids = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    mapped = {c: identity_of(create_with_custom_id(a, c).json())["id"] for c in custom_ids}
    converge(regions)

    regions.take_down(REGION_A)
    for user in users:
        token = b.get_token(user, CHAT)
        assert introspect(b, token.token)
    # A repeat create with a customId is answered from B's replica, whatever its home.
    for custom_id, identity_id in mapped.items():
        response = create_with_custom_id(b, custom_id)
        assert response.status_code in (200, 201), response.text()
        assert identity_of(response.json())["id"] == identity_id
    # New identities without customId are made in B.
    fresh = b.create_user()
    assert introspect(b, b.get_token(fresh, CHAT).token)
    # What only A may write answers 503, and nothing was written.
    homed_in_a = users[0]  # made in A, without a customId
    with pytest.raises(HttpResponseError) as refused:
        b.revoke_tokens(homed_in_a)
    assert refused.value.status_code == 503
    assert introspect(b, b.get_token(homed_in_a, CHAT).token)


def test_the_regions_sign_with_one_key_set(regions):
    """Replicated secrets: both regions publish the same JWKS."""
    keys = []
    for region in (REGION_A, REGION_B):
        url = regions.server(region).endpoint.rstrip("/") + "/.well-known/jwks.json"
        with urllib.request.urlopen(url, timeout=10) as response:
            keys.append(sorted(k["kid"] for k in json.load(response)["keys"]))
    assert keys[0] and keys[0] == keys[1]

