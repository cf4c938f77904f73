"""The public verification endpoints, checked by an independent verifier (PyJWT).

Tokens are issued through the official SDK; the key set is fetched with urllib from
/.well-known/jwks.json (and through the discovery document's jwks_uri), and every token must
verify with PyJWT against the key whose kid its header names, with that key's alg only, the
audience and the issuer checked. Nothing here uses callsign's own code.

Environment, besides conftest.py's:
    CALLSIGN_EXPECT_ALGORITHM   the alg the server signs with: ES256 (default), RS256 or
                                EdDSA (scripts/test sets it with the server's
                                CALLSIGN_SIGNING_ALGORITHM)
    CALLSIGN_TOKEN_ISSUER       expected iss, as for the server (default https://callsign.local)
    CALLSIGN_TOKEN_AUDIENCE     expected aud, as for the server (default callsign)
"""

import base64
import json
import os
import re
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

import jwt
import pytest
from azure.communication.identity import CommunicationTokenScope

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"

# alg -> what its JWK must say (RFC 7518 6.2/6.3, RFC 8037 2).
KEY_TYPES = {
    "ES256": {"kty": "EC", "crv": "P-256", "members": ("x", "y")},
    "RS256": {"kty": "RSA", "crv": None, "members": ("n", "e")},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519", "members": ("x",)},
}
# Private members of EC, RSA and OKP JWKs: none may be published.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

EXPECT_ALGORITHM = os.environ.get("CALLSIGN_EXPECT_ALGORITHM", "").strip() or "ES256"
ISSUER = os.environ.get("CALLSIGN_TOKEN_ISSUER", "").strip() or "https://callsign.local"
AUDIENCE = os.environ.get("CALLSIGN_TOKEN_AUDIENCE", "").strip() or "callsign"

# Tolerance for iat/nbf against this machine's clock (the server runs on the same one).
LEEWAY = timedelta(seconds=5)
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub"]

if EXPECT_ALGORITHM not in KEY_TYPES:
    raise pytest.UsageError(
        f"CALLSIGN_EXPECT_ALGORITHM={EXPECT_ALGORITHM!r}: expected one of {', '.join(KEY_TYPES)}"
    )


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def http_get(url, headers=None):
    """GET with the standard library; a 304 (urllib raises it) is returned like a 200."""
    request = urllib.request.Request(url, headers=headers or {}, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.headers, e.read())


def b64url_decode(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def max_age(cache_control):
    directives = [d.strip().lower() for d in (cache_control or "").split(",")]
    ages = [d.split("=", 1)[1] for d in directives if d.startswith("max-age=")]
    assert len(ages) == 1 and ages[0].isdigit(), f"Cache-Control: {cache_control!r}"
    return int(ages[0])


@pytest.fixture(scope="module")
def jwks_response(endpoint):
    response = http_get(endpoint + JWKS_PATH)
    assert response.status == 200, (response.status, response.body[:500])
    return response


@pytest.fixture(scope="module")
def jwks(jwks_response):
    body = jwks_response.json()
    assert isinstance(body, dict) and isinstance(body.get("keys"), list), body
    assert body["keys"], "the key set is empty"
    return body


@pytest.fixture(scope="module")
def keys_by_kid(jwks):
    kids = [key.get("kid") for key in jwks["keys"]]
    assert len(set(kids)) == len(kids), f"duplicate kids: {kids}"
    return {key["kid"]: key for key in jwks["keys"]}


@pytest.fixture(scope="module")
def discovery(endpoint):
    response = http_get(endpoint + DISCOVERY_PATH)
    assert response.status == 200, (response.status, response.body[:500])
    content_type = response.headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() == "application/json", content_type
    return response.json()


@pytest.fixture(scope="module")
def tokens(client):
    """Tokens issued through the SDK: (identity id, scopes, token) for each issuing call."""
    user, first = client.create_user_and_token([CommunicationTokenScope.CHAT])
    scopes = [CommunicationTokenScope.VOIP, CommunicationTokenScope.CHAT_JOIN]
    second = client.get_token(user, scopes)
    third = client.get_token(user, scopes, token_expires_in=timedelta(minutes=60))
    user_id = user.properties["id"]
    return [
        (user_id, [CommunicationTokenScope.CHAT], first.token),
        (user_id, scopes, second.token),
        (user_id, scopes, third.token),
    ]


def verify(token, jwk):
    """PyJWT's full verification against one JWK, with only that key's algorithm allowed."""
    return jwt.decode(
        token,
        key=jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=LEEWAY,
        options={"require": REQUIRED_CLAIMS},
    )


def key_for(token, keys_by_kid):
    header = jwt.get_unverified_header(token)
    assert header.get("kid") in keys_by_kid, (header, sorted(keys_by_kid))
    return keys_by_kid[header["kid"]]


# --- the key set --------------------------------------------------------------------------


def test_jwks_is_a_cacheable_jwk_set(jwks_response):
    content_type = jwks_response.headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() == "application/jwk-set+json", content_type
    cache_control = jwks_response.headers.get("Cache-Control")
    assert "public" in [d.strip().lower() for d in (cache_control or "").split(",")], cache_control
    assert max_age(cache_control) > 0, cache_control
    etag = jwks_response.headers.get("ETag")
    assert etag and re.fullmatch(r'(W/)?"[^"]*"', etag), f"ETag: {etag!r}"


def test_etag_round_trip_gives_304(endpoint, jwks_response):
    etag = jwks_response.headers["ETag"]
    again = http_get(endpoint + JWKS_PATH, {"If-None-Match": etag})
    assert again.status == 304, (again.status, again.body[:500])
    assert again.body == b"", again.body[:500]
    assert again.headers.get("ETag") == etag, again.headers.get("ETag")
    assert max_age(again.headers.get("Cache-Control")) > 0, again.headers.get("Cache-Control")

    # Another tag is no match: the full key set comes back, unchanged.
    other = http_get(endpoint + JWKS_PATH, {"If-None-Match": '"not-the-current-tag"'})
    assert other.status == 200, (other.status, other.body[:500])
    assert other.headers.get("ETag") == etag
    assert other.json() == jwks_response.json()


def test_every_key_is_a_public_signing_key_of_its_alg(jwks):
    for key in jwks["keys"]:
        assert isinstance(key.get("kid"), str) and key["kid"], key
        assert key.get("use") == "sig", key
        alg = key.get("alg")
        assert alg in KEY_TYPES, key
        expected = KEY_TYPES[alg]
        assert key.get("kty") == expected["kty"], key
        assert key.get("crv") == expected["crv"], key
        for member in expected["members"]:
            assert isinstance(key.get(member), str) and key[member], (member, key)
            assert re.fullmatch(r"[A-Za-z0-9_-]+", key[member]), (member, key)
        sizes = {m: len(b64url_decode(key[m])) for m in expected["members"]}
        if alg == "RS256":
            assert sizes["n"] * 8 >= 2048, f"{key['kid']}: {sizes['n'] * 8}-bit RSA modulus"
        else:
            assert all(size == 32 for size in sizes.values()), (sizes, key)
        leaked = [member for member in PRIVATE_MEMBERS if member in key]
        assert not leaked, f"private members {leaked} published in {key['kid']}"
        # PyJWT parses it as a public key of that algorithm.
        parsed = jwt.PyJWK(key)
        assert parsed.key_id == key["kid"]
        assert parsed.algorithm_name == alg
        assert not hasattr(parsed.key, "private_bytes"), f"{key['kid']} is a private key"


def test_key_set_has_a_key_of_the_expected_algorithm(jwks):
    algs = [key.get("alg") for key in jwks["keys"]]
    assert EXPECT_ALGORITHM in algs, algs


# --- tokens, verified independently ---------------------------------------------------------


def test_token_header_names_the_expected_alg_and_a_published_kid(tokens, keys_by_kid):
    for _, _, token in tokens:
        header = jwt.get_unverified_header(token)
        assert header.get("alg") == EXPECT_ALGORITHM, header
        assert header.get("typ") == "JWT", header
        key = key_for(token, keys_by_kid)
        assert key["alg"] == header["alg"], (header, key)


def test_tokens_verify_against_the_published_key(tokens, keys_by_kid):
    for user_id, scopes, token in tokens:
        claims = verify(token, key_for(token, keys_by_kid))
        assert claims["sub"] == user_id, claims
        assert claims["iss"] == ISSUER and AUDIENCE in (
            [claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"]
        ), claims
        assert sorted(claims["acsScope"].split(",")) == sorted(s.value for s in scopes), claims
        assert isinstance(claims["rev"], int), claims
        now = time.time()
        assert claims["nbf"] <= now + LEEWAY.total_seconds(), claims
        assert claims["iat"] <= now + LEEWAY.total_seconds(), claims
        assert claims["exp"] > now, claims


def test_tokens_verify_with_pyjwkclient_from_the_discovery_jwks_uri(tokens, discovery):
    client = jwt.PyJWKClient(discovery["jwks_uri"], cache_jwk_set=False)
    for user_id, _, token in tokens:
        signing_key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key=signing_key.key,
            algorithms=[signing_key.algorithm_name],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": REQUIRED_CLAIMS},
        )
        assert claims["sub"] == user_id


def test_wrong_audience_or_issuer_is_rejected(tokens, keys_by_kid):
    _, _, token = tokens[0]
    key = key_for(token, keys_by_kid)
    public_key = jwt.PyJWK(key).key
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key=public_key, algorithms=[key["alg"]], audience="someone-else",
                   issuer=ISSUER, leeway=LEEWAY)
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(token, key=public_key, algorithms=[key["alg"]], audience=AUDIENCE,
                   issuer="https://issuer.invalid", leeway=LEEWAY)


def _with_payload(token, payload):
    header, _, signature = token.split(".")
    return f"{header}.{b64url_encode(payload)}.{signature}"


def test_token_with_a_payload_byte_flipped_fails_verification(tokens, keys_by_kid):
    _, _, token = tokens[0]
    key = key_for(token, keys_by_kid)
    payload = b64url_decode(token.split(".")[1])

    # Control: the same payload bytes, re-encoded here, still verify (so a failure below is
    # the flipped byte's doing, not this re-encoding's).
    verify(_with_payload(token, payload), key)

    # The last digit of exp (the JSON stays valid and the claims plausible), then the first,
    # middle and last byte of the payload.
    exp_digit = re.search(rb'"exp":\d+', payload).end() - 1
    positions = {exp_digit, 0, len(payload) // 2, len(payload) - 1}
    for position in sorted(positions):
        flipped = bytearray(payload)
        flipped[position] ^= 0x01
        tampered = _with_payload(token, bytes(flipped))
        assert tampered != token
        with pytest.raises(jwt.InvalidSignatureError):
            verify(tampered, key)


# --- discovery ------------------------------------------------------------------------------


def test_discovery_document_names_this_server(endpoint, discovery):
    assert discovery.get("issuer") == ISSUER, discovery
    jwks_uri = discovery.get("jwks_uri")
    assert isinstance(jwks_uri, str), discovery
    assert urlsplit(jwks_uri).netloc == urlsplit(endpoint).netloc, (jwks_uri, endpoint)
    assert urlsplit(jwks_uri).path == JWKS_PATH, jwks_uri
    assert isinstance(discovery.get("introspection_endpoint"), str), discovery
    supported = discovery.get("id_token_signing_alg_values_supported")
    assert isinstance(supported, list) and EXPECT_ALGORITHM in supported, discovery


def test_discovery_jwks_uri_serves_the_same_key_set(discovery, jwks, jwks_response):
    response = http_get(discovery["jwks_uri"])
    assert response.status == 200, (response.status, response.body[:500])
    assert response.json() == jwks
    assert response.headers.get("ETag") == jwks_response.headers.get("ETag")
