"""The documented operations of azure-communication-identity 1.5.0 against callsign."""

import base64
import os
import re
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.identity import (
    CommunicationIdentityClient,
    CommunicationTokenScope,
    CommunicationUserIdentifier,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from acs import check_access_token, error_code, send

ALL_SCOPES = [
    CommunicationTokenScope.CHAT,
    CommunicationTokenScope.CHAT_JOIN,
    CommunicationTokenScope.CHAT_JOIN_LIMITED,
    CommunicationTokenScope.VOIP,
    CommunicationTokenScope.VOIP_JOIN,
]

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def now():
    return datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def user(client):
    """One identity for the token tests of this module."""
    return client.create_user()


def test_resource_id_is_a_guid(resource_id):
    assert re.fullmatch(GUID, resource_id), resource_id


def test_create_user_returns_an_acs_id_of_this_resource(client, resource_id):
    user = client.create_user()
    assert isinstance(user, CommunicationUserIdentifier)
    prefix = f"8:acs:{resource_id}_"
    assert user.properties["id"].startswith(prefix), user.properties["id"]
    assert len(user.properties["id"]) > len(prefix)
    assert user.raw_id == user.properties["id"]


def test_create_user_makes_a_new_identity_each_time(client):
    ids = {client.create_user().properties["id"] for _ in range(3)}
    assert len(ids) == 3


def test_create_user_and_token(client, resource_id):
    scopes = [CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP]
    before = now()
    user, token = client.create_user_and_token(scopes, token_expires_in=timedelta(minutes=60))
    assert user.properties["id"].startswith(f"8:acs:{resource_id}_")
    check_access_token(
        token,
        user_id=user.properties["id"],
        scopes=scopes,
        minutes=60,
        resource_id=resource_id,
        issued_after=before,
    )


def test_create_user_and_token_defaults_to_24_hours(client, resource_id):
    scopes = [CommunicationTokenScope.CHAT_JOIN]
    before = now()
    user, token = client.create_user_and_token(scopes)
    check_access_token(
        token,
        user_id=user.properties["id"],
        scopes=scopes,
        minutes=1440,
        resource_id=resource_id,
        issued_after=before,
    )


@pytest.mark.parametrize("minutes", [60, 1440])
@pytest.mark.parametrize("scope", ALL_SCOPES, ids=lambda s: s.value)
def test_get_token_for_each_scope_and_lifetime(client, user, resource_id, scope, minutes):
    before = now()
    token = client.get_token(user, [scope], token_expires_in=timedelta(minutes=minutes))
    payload = check_access_token(
        token,
        user_id=user.properties["id"],
        scopes=[scope],
        minutes=minutes,
        resource_id=resource_id,
        issued_after=before,
    )
    assert payload["acsScope"] == scope.value


def test_get_token_with_two_scopes_and_raw_strings(client, user, resource_id):
    scopes = ["chat.join.limited", "voip.join"]
    before = now()
    token = client.get_token(user, scopes, token_expires_in=timedelta(minutes=90))
    check_access_token(
        token,
        user_id=user.properties["id"],
        scopes=scopes,
        minutes=90,
        resource_id=resource_id,
        issued_after=before,
    )


def test_get_token_defaults_to_24_hours(client, user, resource_id):
    before = now()
    token = client.get_token(user, [CommunicationTokenScope.VOIP])
    check_access_token(
        token,
        user_id=user.properties["id"],
        scopes=[CommunicationTokenScope.VOIP],
        minutes=1440,
        resource_id=resource_id,
        issued_after=before,
    )


def test_revoke_then_issue_then_delete(client, resource_id):
    user = client.create_user()
    scopes = [CommunicationTokenScope.CHAT]
    first = client.get_token(user, scopes, token_expires_in=timedelta(minutes=60))

    assert client.revoke_tokens(user) is None

    # A token issued right after the revoke is a valid, new token.
    before = now()
    second = client.get_token(user, scopes, token_expires_in=timedelta(minutes=60))
    check_access_token(
        second,
        user_id=user.properties["id"],
        scopes=scopes,
        minutes=60,
        resource_id=resource_id,
        issued_after=before,
    )
    assert second.token != first.token

    assert client.delete_user(user) is None

    with pytest.raises(ResourceNotFoundError) as excinfo:
        client.get_token(user, scopes)
    assert excinfo.value.status_code == 404
    assert error_code(excinfo.value) == "IdentityNotFound"

    with pytest.raises(ResourceNotFoundError):
        client.revoke_tokens(user)


def test_unknown_identity_of_this_resource_is_not_found(client, resource_id):
    user = CommunicationUserIdentifier(f"8:acs:{resource_id}_00000000-0000-0000-0000-000000000000")
    with pytest.raises(ResourceNotFoundError) as excinfo:
        client.get_token(user, [CommunicationTokenScope.CHAT])
    assert error_code(excinfo.value) == "IdentityNotFound"


def test_an_identity_of_another_resource_is_not_owned(client, resource_id):
    other = "0b2d5c3e-1f4a-4e8b-9c6d-7a8b9c0d1e2f"
    assert other != resource_id.lower()
    user = CommunicationUserIdentifier(f"8:acs:{other}_00000005-14a2-493b-8a72-5a3a0d000081")
    with pytest.raises(ClientAuthenticationError) as excinfo:
        client.get_token(user, [CommunicationTokenScope.CHAT])
    assert excinfo.value.status_code == 401
    assert error_code(excinfo.value) == "IdentityNotOwned"


@pytest.mark.parametrize("minutes", [30, 59, 1441, 1500])
def test_get_token_rejects_lifetimes_outside_1_to_24_hours(client, user, minutes):
    with pytest.raises(HttpResponseError) as excinfo:
        client.get_token(
            user, [CommunicationTokenScope.CHAT], token_expires_in=timedelta(minutes=minutes)
        )
    exc = excinfo.value
    assert not isinstance(exc, (ClientAuthenticationError, ResourceNotFoundError, ResourceExistsError))
    assert exc.status_code == 400
    assert error_code(exc) == "ValidationError"
    assert str(exc).startswith("(ValidationError)"), str(exc)


@pytest.mark.parametrize("minutes", [30, 1500])
def test_create_user_and_token_rejects_lifetimes_outside_1_to_24_hours(client, minutes):
    with pytest.raises(HttpResponseError) as excinfo:
        client.create_user_and_token(
            [CommunicationTokenScope.CHAT], token_expires_in=timedelta(minutes=minutes)
        )
    assert excinfo.value.status_code == 400
    assert error_code(excinfo.value) == "ValidationError"


def test_get_token_rejects_empty_scopes(client, user):
    with pytest.raises(HttpResponseError) as excinfo:
        client.get_token(user, [])
    assert excinfo.value.status_code == 400
    assert error_code(excinfo.value) == "ValidationError"


def test_get_token_rejects_an_unknown_scope(client, user):
    with pytest.raises(HttpResponseError) as excinfo:
        client.get_token(user, ["chat.admin"])
    assert excinfo.value.status_code == 400
    assert error_code(excinfo.value) == "ValidationError"


@pytest.mark.parametrize("token", ["", "invalid"])
def test_get_token_for_teams_user_checks_the_token_first(client, token):
    """Microsoft's own test: an empty or invalid Entra token is 401 even with an empty userId
    (this server trusts no Teams tenant here, so no token is valid)."""
    with pytest.raises(ClientAuthenticationError) as excinfo:
        client.get_token_for_teams_user(token, "00000000-0000-4000-8000-000000000001", "")
    assert excinfo.value.status_code == 401
    assert error_code(excinfo.value) == "InvalidAccessToken"


@pytest.mark.parametrize("version", ["2020-07-20-preview2", "2022-09-01", "2025-04-01-preview", "2026-09-23"])
def test_every_published_api_version_is_served(client, version):
    response = send(client, "POST", "/identities", api_version=version)
    assert response.status_code == 201, response.text()
    assert response.json()["identity"]["id"].startswith("8:acs:")


def test_unsupported_api_version_is_rejected(client):
    response = send(client, "POST", "/identities", api_version="2020-01-01")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "UnsupportedApiVersion"


@pytest.mark.parametrize("key_bytes", [32, 48, 64])
def test_a_wrong_access_key_is_denied(make_client, key_bytes):
    wrong = make_client(base64.b64encode(os.urandom(key_bytes)).decode())
    with pytest.raises(ClientAuthenticationError) as excinfo:
        wrong.create_user()
    assert excinfo.value.status_code == 401
    assert error_code(excinfo.value) == "Denied"


def test_a_wrong_access_key_cannot_issue_tokens(make_client, user):
    wrong = make_client(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(ClientAuthenticationError):
        wrong.get_token(user, [CommunicationTokenScope.CHAT])


def test_an_endpoint_with_a_trailing_slash_is_denied(endpoint, access_key):
    # The Python SDK signs the host as "127.0.0.1:PORT/" then; the real service answers
    # 401 Denied (wire spec, section 3, rule 5).
    client = CommunicationIdentityClient(endpoint + "/", AzureKeyCredential(access_key))
    with pytest.raises(ClientAuthenticationError) as excinfo:
        client.create_user()
    assert error_code(excinfo.value) == "Denied"


def test_client_request_id_is_echoed(client):
    response = send(client, "POST", "/identities")
    assert response.status_code == 201
    sent = response.request.headers["x-ms-client-request-id"]
    assert response.headers.get("x-ms-client-request-id") == sent
