"""Bearer (token credential) authentication against the local server over HTTPS.

* The official Python SDK, sync and async, built as an app on Azure builds it:
  `CommunicationIdentityClient(endpoint, DefaultAzureCredential())`, the credential
  configured by the environment alone (IDENTITY_ENDPOINT, IDENTITY_HEADER — the App
  Service managed-identity protocol, served by the server's development issuer — and
  AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential): create, issue, revoke, delete.
* The Teams token exchange (`get_token_for_teams_user`): success, and each refusal with
  the status the SDK raises (400 for a wrong appId/userId, 401 for a token not valid here).
* Raw HTTP: bearer tokens the admin API must refuse (401 with `WWW-Authenticate: Bearer
  … error="invalid_token"`), and roles that do not allow the operation (403 with
  `error="insufficient_scope"`); after each refusal, nothing was written.

Environment: see conftest.py (CALLSIGN_READY_FILE).
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
import requests
from acs import decode_jwt, error_code, parse_expires_on, pct, send
from azure.communication.identity import (
    CommunicationIdentityClient,
    CommunicationTokenScope,
    CommunicationUserIdentifier,
)
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity import DefaultAzureCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PREVIEW = "2025-03-02-preview"
GA = "2023-10-01"
ADMIN_AUDIENCE = "https://communication.azure.com"
TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"
TEAMS_SCOPES = (
    f"{TEAMS_AUDIENCE}/Teams.ManageCalls",
    f"{TEAMS_AUDIENCE}/Teams.ManageChats",
)


# --- helpers ---------------------------------------------------------------------------


def b64url(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified(token):
    """(header, payload) of a compact JWT, signature unchecked."""
    header, payload, _ = token.split(".")
    parse = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return parse(header), parse(payload)


def bearer_policy_spy():
    """A raw_request_hook that records the Authorization scheme of each request the SDK
    sends (so the tests see the client used the token credential, not HMAC)."""
    schemes = []

    def hook(pipeline_request):
        authorization = pipeline_request.http_request.headers.get("Authorization", "")
        schemes.append(authorization.split(" ", 1)[0])

    return schemes, hook


@pytest.fixture(scope="session")
def hmac_client(connection_string):
    """The access key's client (HMAC), to look at what bearer requests did or did not write."""
    return CommunicationIdentityClient.from_connection_string(connection_string)


@pytest.fixture(scope="session")
def foreign_key():
    """An RSA key the server has never seen."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def trusted_kid(dev_issuer):
    keys = dev_issuer.jwks()["keys"]
    assert keys and all(key.get("kid") for key in keys), keys
    return keys[0]["kid"]


def introspect(hmac_client, token):
    response = send(hmac_client, "POST", "/tokens/:introspect", json_body={"token": token}, api_version=GA)
    assert response.status_code == 200, response.text()
    return response.json()


def custom_id_status(hmac_client, custom_id):
    """The status of the access key's lookup of custom_id: 404 when nothing maps it."""
    response = send(hmac_client, "GET", f"/customIds/{pct(custom_id)}")
    assert response.status_code in (200, 404), (response.status_code, response.text())
    if response.status_code == 404:
        assert response.json()["error"]["code"] == "IdentityNotFound", response.text()
    return response.status_code


def admin_claims(dev_issuer, **extra):
    now = int(time.time())
    return {
        "iss": dev_issuer.issuer,
        "aud": ADMIN_AUDIENCE,
        "sub": "forger",
        "roles": ["identity.admin"],
        "iat": now,
        "exp": now + 3600,
        **extra,
    }


class Api:
    """Raw admin requests with a bearer token (the CA bundle from REQUESTS_CA_BUNDLE)."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def __call__(self, method, path, token, *, json_body=None, api_version=PREVIEW):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return requests.request(
            method,
            f"{self.endpoint}{path}",
            params={"api-version": api_version},
            json=json_body,
            headers=headers,
            timeout=10,
        )


@pytest.fixture(scope="session")
def api(endpoint):
    return Api(endpoint)


def assert_refused(response, status, code, challenge):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    assert response.json()["error"]["code"] == code, response.text
    www = response.headers.get("WWW-Authenticate", "")
    assert www.startswith("Bearer "), f"WWW-Authenticate: {www!r}"
    assert f'error="{challenge}"' in www, f"WWW-Authenticate: {www!r}"


# --- the SDK with DefaultAzureCredential --------------------------------------------------


def test_the_sync_client_works_with_default_azure_credential(managed_identity_env, endpoint, hmac_client):
    schemes, hook = bearer_policy_spy()
    # The sync client (1.5.0) is no context manager; the credential is.
    with DefaultAzureCredential() as credential:
        client = CommunicationIdentityClient(endpoint, credential)
        plain = client.create_user(raw_request_hook=hook)
        assert plain.properties["id"].startswith("8:acs:")
        user, token = client.create_user_and_token([CommunicationTokenScope.CHAT], raw_request_hook=hook)
        assert user.properties["id"].startswith("8:acs:")
        _, payload = decode_jwt(token.token)
        assert payload["sub"] == user.properties["id"]
        again = client.get_token(user, [CommunicationTokenScope.VOIP], raw_request_hook=hook)
        assert again.token and again.token != token.token
        assert introspect(hmac_client, again.token)["active"] is True

        client.revoke_tokens(user, raw_request_hook=hook)
        gone = introspect(hmac_client, again.token)
        assert gone["active"] is False, gone

        client.delete_user(user, raw_request_hook=hook)
        client.delete_user(plain, raw_request_hook=hook)
        with pytest.raises(ResourceNotFoundError):
            client.get_token(user, [CommunicationTokenScope.CHAT], raw_request_hook=hook)
    assert schemes and set(schemes) == {"Bearer"}, schemes


def test_the_async_client_works_with_default_azure_credential(managed_identity_env, endpoint, hmac_client):
    schemes, hook = bearer_policy_spy()

    async def run():
        async with AsyncDefaultAzureCredential() as credential, AsyncClient(endpoint, credential) as client:
            plain = await client.create_user(raw_request_hook=hook)
            user, token = await client.create_user_and_token([CommunicationTokenScope.CHAT], raw_request_hook=hook)
            again = await client.get_token(user, [CommunicationTokenScope.CHAT], raw_request_hook=hook)
            assert again.token
            await client.revoke_tokens(user, raw_request_hook=hook)
            await client.delete_user(user, raw_request_hook=hook)
            await client.delete_user(plain, raw_request_hook=hook)
            with pytest.raises(ResourceNotFoundError):
                await client.get_token(user, [CommunicationTokenScope.CHAT], raw_request_hook=hook)
            return user, token, again

    user, token, again = asyncio.run(run())
    assert user.properties["id"].startswith("8:acs:")
    assert introspect(hmac_client, token.token)["active"] is False
    assert introspect(hmac_client, again.token)["active"] is False
    assert schemes and set(schemes) == {"Bearer"}, schemes


class StaticCredential:
    """A TokenCredential that hands out one fixed token (for tokens DefaultAzureCredential
    would never produce)."""

    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


class AsyncStaticCredential(StaticCredential):
    async def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self):
        pass


def test_the_sdk_raises_403_for_a_role_that_does_not_allow_the_operation(dev_issuer, endpoint, hmac_client):
    user = hmac_client.create_user()
    token = hmac_client.get_token(user, [CommunicationTokenScope.CHAT]).token
    issuer_only = StaticCredential(dev_issuer.admin_token(["token.issue"]))
    client = CommunicationIdentityClient(endpoint, issuer_only)
    with pytest.raises(HttpResponseError) as refused:
        client.revoke_tokens(user)
    assert refused.value.status_code == 403
    assert error_code(refused.value) == "Forbidden"
    with pytest.raises(HttpResponseError) as refused:
        client.delete_user(user)
    assert refused.value.status_code == 403
    # What the role does allow.
    assert client.get_token(user, [CommunicationTokenScope.VOIP]).token
    assert introspect(hmac_client, token)["active"] is True
    hmac_client.delete_user(user)


def test_the_sdk_raises_401_for_an_expired_bearer(dev_issuer, endpoint):
    expired = StaticCredential(dev_issuer.admin_token(["identity.admin"], expiresIn=-3600))
    with pytest.raises(ClientAuthenticationError) as refused:
        CommunicationIdentityClient(endpoint, expired).create_user()
    assert refused.value.status_code == 401
    assert error_code(refused.value) == "Denied"

    async def run():
        async with AsyncClient(endpoint, AsyncStaticCredential(expired.token)) as client:
            with pytest.raises(ClientAuthenticationError) as refused:
                await client.create_user()
            return refused.value.status_code

    assert asyncio.run(run()) == 401


# --- the Teams token exchange ---------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def exchange(request, managed_identity_env, endpoint):
    """get_token_for_teams_user through the sync or the async client, both built with
    DefaultAzureCredential (its token has every admin role)."""
    if request.param == "sync":
        credential = DefaultAzureCredential()
        client = CommunicationIdentityClient(endpoint, credential)

        def call(aad_token, client_id, user_object_id):
            return client.get_token_for_teams_user(aad_token, client_id, user_object_id)

        yield call
        credential.close()
    else:

        def call(aad_token, client_id, user_object_id):
            async def run():
                async with AsyncDefaultAzureCredential() as credential, AsyncClient(endpoint, credential) as client:
                    return await client.get_token_for_teams_user(aad_token, client_id, user_object_id)

            return asyncio.run(run())

        yield call


@pytest.fixture
def teams_user():
    """(oid, appid) of a Teams user and the app they signed in to."""
    return str(uuid.uuid4()), str(uuid.uuid4())


def test_a_teams_token_is_exchanged(exchange, dev_issuer, teams_user, hmac_client, api):
    oid, appid = teams_user
    teams_token = dev_issuer.teams_token(oid, appid)
    token = exchange(teams_token, appid, oid)

    _, payload = decode_jwt(token.token)
    assert payload["sub"] == f"8:orgid:{oid}", payload
    assert payload["skypeid"] == f"orgid:{oid}", payload
    assert sorted(payload["acsScope"].split(",")) == ["chat", "voip"], payload
    # The exchanged token ends when the Entra token does.
    assert payload["exp"] == unverified(teams_token)[1]["exp"], payload
    assert parse_expires_on(token.expires_on).timestamp() == payload["exp"]

    by_key = introspect(hmac_client, token.token)
    assert by_key["active"] is True and by_key["sub"] == f"8:orgid:{oid}", by_key
    by_bearer = api("POST", "/tokens/:introspect", dev_issuer.admin_token(["identity.read"]),
                    json_body={"token": token.token}, api_version=GA)
    assert by_bearer.status_code == 200, by_bearer.text
    assert by_bearer.json()["active"] is True and by_bearer.json()["sub"] == f"8:orgid:{oid}"


def test_the_teams_exchange_accepts_short_scope_names_and_the_appid_in_any_case(exchange, dev_issuer, teams_user):
    oid, appid = teams_user
    teams_token = dev_issuer.teams_token(oid, appid, scp="Teams.ManageChats Teams.ManageCalls User.Read")
    token = exchange(teams_token, appid.upper(), oid.upper())
    assert decode_jwt(token.token)[1]["sub"] == f"8:orgid:{oid}"


def refused_by(exchange, aad_token, client_id, user_object_id):
    with pytest.raises(HttpResponseError) as refused:
        exchange(aad_token, client_id, user_object_id)
    return refused.value


@pytest.mark.parametrize(
    "case",
    ["wrong appId", "wrong userId", "appId not a GUID", "userId not a GUID", "empty appId", "empty userId"],
)
def test_the_teams_exchange_answers_400_for_an_appid_or_userid_that_does_not_fit(
    exchange, dev_issuer, teams_user, case
):
    oid, appid = teams_user
    teams_token = dev_issuer.teams_token(oid, appid)
    other = str(uuid.uuid4())
    client_id, user_id, target = {
        "wrong appId": (other, oid, "appId"),
        "wrong userId": (appid, other, "userId"),
        "appId not a GUID": ("my-app", oid, "appId"),
        "userId not a GUID": (appid, "alice@contoso.com", "userId"),
        "empty appId": ("", oid, "AppId"),
        "empty userId": (appid, "", "UserId"),
    }[case]
    error = refused_by(exchange, teams_token, client_id, user_id)
    assert error.status_code == 400, error
    assert error_code(error) == "ValidationError"
    assert error.error.target == target, error.error


def foreign_teams_token(dev_issuer, key, kid, oid, appid, **extra):
    now = int(time.time())
    claims = {
        "iss": dev_issuer.issuer,
        "aud": TEAMS_AUDIENCE,
        "sub": oid,
        "oid": oid,
        "appid": appid,
        "tid": "00000000-0000-0000-0000-000000000000",
        "scp": " ".join(TEAMS_SCOPES),
        "iat": now,
        "exp": now + 3600,
        **extra,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "no scopes",
        "Teams.ManageCalls only",
        "Teams.ManageChats only",
        "scopes of another API",
        "another audience",
        "an admin token",
        "signed by a foreign key, unknown kid",
        "signed by a foreign key, a trusted kid",
        "payload altered",
        "malformed",
        "empty",
    ],
)
def test_the_teams_exchange_answers_401_for_a_token_not_valid_here(
    exchange, dev_issuer, teams_user, foreign_key, trusted_kid, case
):
    oid, appid = teams_user

    def altered():
        header, payload, signature = dev_issuer.teams_token(oid, appid, scp=TEAMS_SCOPES[0]).split(".")
        claims = unverified(f"{header}.{payload}.{signature}")[1]
        claims["scp"] = " ".join(TEAMS_SCOPES)
        return f"{header}.{b64url(claims)}.{signature}"

    aad_token = {
        "expired": lambda: dev_issuer.teams_token(oid, appid, expiresIn=-3600),
        "no scopes": lambda: dev_issuer.teams_token(oid, appid, scp=" "),
        "Teams.ManageCalls only": lambda: dev_issuer.teams_token(oid, appid, scp=TEAMS_SCOPES[0]),
        "Teams.ManageChats only": lambda: dev_issuer.teams_token(oid, appid, scp=TEAMS_SCOPES[1]),
        "scopes of another API": lambda: dev_issuer.teams_token(
            oid, appid, scp="https://graph.microsoft.com/Teams.ManageCallsX User.Read"
        ),
        "another audience": lambda: dev_issuer.teams_token(oid, appid, aud="https://graph.microsoft.com"),
        "an admin token": lambda: dev_issuer.admin_token(["identity.admin"], sub=oid),
        "signed by a foreign key, unknown kid": lambda: foreign_teams_token(
            dev_issuer, foreign_key, f"foreign-{uuid.uuid4().hex[:8]}", oid, appid
        ),
        "signed by a foreign key, a trusted kid": lambda: foreign_teams_token(
            dev_issuer, foreign_key, trusted_kid, oid, appid
        ),
        "payload altered": altered,
        "malformed": lambda: "not.a-jwt",
        "empty": lambda: "",
    }[case]()
    error = refused_by(exchange, aad_token, appid, oid)
    assert error.status_code == 401, error
    assert isinstance(error, ClientAuthenticationError), type(error)
    assert error_code(error) == "InvalidAccessToken"


def test_the_teams_exchange_needs_the_token_issue_role(dev_issuer, teams_user, api):
    oid, appid = teams_user
    body = {"token": dev_issuer.teams_token(oid, appid), "appId": appid, "userId": oid}
    refused = api("POST", "/teamsUser/:exchangeAccessToken", dev_issuer.admin_token(["identity.read"]),
                  json_body=body, api_version=GA)
    assert_refused(refused, 403, "Forbidden", "insufficient_scope")
    allowed = api("POST", "/teamsUser/:exchangeAccessToken", dev_issuer.admin_token(["token.issue"]),
                  json_body=body, api_version=GA)
    assert allowed.status_code == 200, allowed.text
    assert set(allowed.json()) == {"token", "expiresOn"}, allowed.text


@pytest.mark.parametrize("missing", ["appId", "userId"])
def test_the_teams_exchange_answers_400_for_a_missing_field(dev_issuer, teams_user, api, missing):
    oid, appid = teams_user
    body = {"token": dev_issuer.teams_token(oid, appid), "appId": appid, "userId": oid}
    del body[missing]
    response = api("POST", "/teamsUser/:exchangeAccessToken", dev_issuer.admin_token(["token.issue"]),
                   json_body=body, api_version=GA)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError", error
    assert error["target"] == {"appId": "AppId", "userId": "UserId"}[missing], error


def test_the_teams_exchange_checks_the_token_before_the_other_fields(dev_issuer, api):
    """ACS answers a missing token 401, whatever appId and userId hold."""
    response = api("POST", "/teamsUser/:exchangeAccessToken", dev_issuer.admin_token(["token.issue"]),
                   json_body={"appId": "my-app", "userId": ""}, api_version=GA)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "InvalidAccessToken", response.text


# --- raw HTTP: bearer tokens the admin API refuses ------------------------------------------


def hs256(claims, secret, kid):
    header = b64url({"alg": "HS256", "typ": "JWT", "kid": kid})
    signing_input = f"{header}.{b64url(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def public_key_pem(dev_issuer, kid):
    """The issuer's public key as PEM: the HMAC secret of the classic alg-confusion attack."""
    jwk = next(key for key in dev_issuer.jwks()["keys"] if key["kid"] == kid)
    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


REFUSED_BEARERS = [
    "another audience",
    "another issuer (own key)",
    "expired",
    "alg none",
    "alg none, no signature part",
    "HS256 with some secret",
    "HS256 with the issuer's public key",
    "unknown kid (own key)",
    "a trusted kid (own key)",
    "payload altered",
    "an end-user ID token",
    "a Teams user's token",
    "not a JWT",
]


def refused_bearer(case, dev_issuer, foreign_key, trusted_kid):
    claims = admin_claims(dev_issuer)
    if case == "another audience":
        return dev_issuer.admin_token(["identity.admin"], aud="https://other.example")
    if case == "another issuer (own key)":
        claims["iss"] = "https://login.example/evil"
        return jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": trusted_kid})
    if case == "expired":
        return dev_issuer.admin_token(["identity.admin"], expiresIn=-3600)
    if case == "alg none":
        return f"{b64url({'alg': 'none', 'typ': 'JWT', 'kid': trusted_kid})}.{b64url(claims)}."
    if case == "alg none, no signature part":
        return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}"
    if case == "HS256 with some secret":
        return hs256(claims, b"some secret the server does not know", trusted_kid)
    if case == "HS256 with the issuer's public key":
        return hs256(claims, public_key_pem(dev_issuer, trusted_kid), trusted_kid)
    if case == "unknown kid (own key)":
        return jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": "not-in-the-jwks"})
    if case == "a trusted kid (own key)":
        return jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": trusted_kid})
    if case == "payload altered":
        header, _, signature = dev_issuer.admin_token(["identity.read"]).split(".")
        return f"{header}.{b64url(claims)}.{signature}"
    if case == "an end-user ID token":
        response = requests.post(f"{dev_issuer.issuer}/token", json={"sub": "alice"}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["id_token"]
    if case == "a Teams user's token":
        return dev_issuer.teams_token(str(uuid.uuid4()), str(uuid.uuid4()))
    if case == "not a JWT":
        return "not-a-jwt"
    raise AssertionError(case)


@pytest.mark.parametrize("case", REFUSED_BEARERS)
def test_a_create_with_a_refused_bearer_is_401_and_writes_nothing(
    case, dev_issuer, foreign_key, trusted_kid, api, hmac_client, custom_id
):
    token = refused_bearer(case, dev_issuer, foreign_key, trusted_kid)
    response = api("POST", "/identities", token, json_body={"customId": custom_id, "createTokenWithScopes": ["chat"]})
    assert_refused(response, 401, "Denied", "invalid_token")
    assert custom_id_status(hmac_client, custom_id) == 404


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "bearer   ", "BEARER not-a-jwt", "Bearer a.b.c"])
def test_an_empty_or_garbage_bearer_is_401_and_writes_nothing(authorization, endpoint, hmac_client, custom_id):
    response = requests.post(
        f"{endpoint}/identities",
        params={"api-version": PREVIEW},
        json={"customId": custom_id},
        headers={"Authorization": authorization},
        timeout=10,
    )
    assert_refused(response, 401, "Denied", "invalid_token")
    assert custom_id_status(hmac_client, custom_id) == 404


@pytest.mark.parametrize("case", ["expired", "alg none", "HS256 with some secret", "unknown kid (own key)"])
def test_a_revoke_or_delete_with_a_refused_bearer_is_401_and_changes_nothing(
    case, dev_issuer, foreign_key, trusted_kid, api, hmac_client
):
    user = hmac_client.create_user()
    token = hmac_client.get_token(user, [CommunicationTokenScope.CHAT]).token
    identity = pct(user.properties["id"])
    bearer = refused_bearer(case, dev_issuer, foreign_key, trusted_kid)
    assert_refused(api("POST", f"/identities/{identity}/:revokeAccessTokens", bearer), 401, "Denied", "invalid_token")
    assert_refused(api("DELETE", f"/identities/{identity}", bearer), 401, "Denied", "invalid_token")
    assert introspect(hmac_client, token)["active"] is True
    assert send(hmac_client, "GET", f"/identities/{identity}").status_code == 200
    hmac_client.delete_user(user)


@pytest.mark.parametrize("roles", [["identity.read"], [], ["Identity.Admin", "TOKEN.ISSUE"]])
def test_a_create_without_the_issue_role_is_403_and_writes_nothing(roles, dev_issuer, api, hmac_client, custom_id):
    token = dev_issuer.admin_token(roles)
    response = api("POST", "/identities", token, json_body={"customId": custom_id})
    assert_refused(response, 403, "Forbidden", "insufficient_scope")
    assert custom_id_status(hmac_client, custom_id) == 404


def test_revoke_and_delete_need_the_admin_role(dev_issuer, api, hmac_client):
    user = hmac_client.create_user()
    token = hmac_client.get_token(user, [CommunicationTokenScope.CHAT]).token
    identity = pct(user.properties["id"])
    for roles in (["token.issue"], ["identity.read"], ["token.issue", "identity.read"]):
        bearer = dev_issuer.admin_token(roles)
        revoke = api("POST", f"/identities/{identity}/:revokeAccessTokens", bearer)
        assert_refused(revoke, 403, "Forbidden", "insufficient_scope")
        delete = api("DELETE", f"/identities/{identity}", bearer)
        assert_refused(delete, 403, "Forbidden", "insufficient_scope")
    # Nothing changed: the token is active, the identity is there.
    assert introspect(hmac_client, token)["active"] is True
    assert send(hmac_client, "GET", f"/identities/{identity}").status_code == 200

    admin = dev_issuer.admin_token(["identity.admin"])
    assert api("POST", f"/identities/{identity}/:revokeAccessTokens", admin).status_code == 204
    assert introspect(hmac_client, token)["active"] is False
    assert api("DELETE", f"/identities/{identity}", admin).status_code == 204
    assert send(hmac_client, "GET", f"/identities/{identity}").status_code == 404


def test_issue_needs_the_issue_role_and_reads_need_the_read_role(dev_issuer, api, hmac_client, custom_id):
    created = send(hmac_client, "POST", "/identities", json_body={"customId": custom_id})
    assert created.status_code == 201, created.text()
    user_id = created.json()["identity"]["id"]
    identity = pct(user_id)
    issuer, reader = dev_issuer.admin_token(["token.issue"]), dev_issuer.admin_token(["identity.read"])

    refused = api("POST", f"/identities/{identity}/:issueAccessToken", reader, json_body={"scopes": ["chat"]})
    assert_refused(refused, 403, "Forbidden", "insufficient_scope")
    assert "lastTokenIssuedAt" not in send(hmac_client, "GET", f"/identities/{identity}").json()
    issued = api("POST", f"/identities/{identity}/:issueAccessToken", issuer, json_body={"scopes": ["chat"]})
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]

    for path in (f"/identities/{identity}", f"/customIds/{pct(custom_id)}"):
        assert_refused(api("GET", path, issuer), 403, "Forbidden", "insufficient_scope")
        allowed = api("GET", path, reader)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["id"] == user_id, allowed.text
    introspection = api("POST", "/tokens/:introspect", issuer, json_body={"token": token}, api_version=GA)
    assert_refused(introspection, 403, "Forbidden", "insufficient_scope")
    introspection = api("POST", "/tokens/:introspect", reader, json_body={"token": token}, api_version=GA)
    assert introspection.status_code == 200, introspection.text
    assert introspection.json()["active"] is True and introspection.json()["sub"] == user_id

    hmac_client.delete_user(CommunicationUserIdentifier(user_id))


def test_a_token_from_the_managed_identity_endpoint_needs_the_identity_header(ready):
    url = f"{ready['identityEndpoint']}?resource={ADMIN_AUDIENCE}&api-version=2019-08-01"
    for headers in ({}, {"X-IDENTITY-HEADER": "guess"}):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
    response = requests.get(url, headers={"X-IDENTITY-HEADER": ready["identityHeader"]}, timeout=10)
    assert response.status_code == 200, response.text
    assert unverified(response.json()["access_token"])[1]["roles"] == ["identity.admin"]
