"""Checks shared by the SDK tests: token parsing and the ACS error envelope."""

import base64
import binascii
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from azure.communication.chat import CommunicationTokenCredential
from azure.core.rest import HttpRequest

PREVIEW_API_VERSION = "2025-03-02-preview"

# Allowed distance between "now + lifetime" on this machine and the token's expiry.
CLOCK_SLACK = timedelta(minutes=2)


def parse_expires_on(value):
    """The SDK hands expiresOn through as the RFC 3339 string it received."""
    if isinstance(value, datetime):
        parsed = value
    else:
        assert isinstance(value, str), f"expires_on is {type(value).__name__}: {value!r}"
        parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"expires_on has no UTC offset: {value!r}"
    return parsed


def _b64url_json(segment):
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def decode_jwt(token):
    """Returns (header, payload) of a compact JWT, checking what the clients rely on."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a compact JWT: {token[:40]}..."
    header, payload = _b64url_json(parts[0]), _b64url_json(parts[1])
    # The Python SDKs decode the payload with *standard* base64 and "==" padding: a payload
    # segment with '-' or '_' decodes to garbage there.
    assert not set(parts[1]) & set("-_="), "payload segment is not plain base64 alphabet"
    try:
        standard = json.loads(base64.b64decode(parts[1] + "==").decode("ascii"))
    except (binascii.Error, ValueError) as e:  # pragma: no cover - reported as failure
        raise AssertionError(f"payload does not decode as standard base64: {e}") from e
    assert standard == payload
    return header, payload


def check_access_token(access_token, *, user_id, scopes, minutes, resource_id, issued_after):
    """Asserts everything a client can see of an issued token.

    issued_after: a UTC datetime taken just before the request.
    """
    token, expires_on = access_token.token, parse_expires_on(access_token.expires_on)
    header, payload = decode_jwt(token)

    assert header.get("alg"), header
    assert header.get("kid"), header

    # Lifetime: now + minutes, within the clock slack.
    expected = issued_after + timedelta(minutes=minutes)
    assert abs(expires_on - expected) <= CLOCK_SLACK, (
        f"expires_on {expires_on.isoformat()} is not about {minutes} min from {issued_after.isoformat()}"
    )

    # exp is an integer and equals expiresOn exactly.
    exp = payload.get("exp")
    assert isinstance(exp, int) and not isinstance(exp, bool), f"exp is {exp!r}"
    assert expires_on.timestamp() == exp, (
        f"expiresOn {access_token.expires_on!r} != exp {exp} "
        f"({datetime.fromtimestamp(exp, timezone.utc).isoformat()})"
    )

    # The scopes, comma-separated without spaces, and the identity.
    acs_scope = payload.get("acsScope")
    assert isinstance(acs_scope, str) and " " not in acs_scope, f"acsScope is {acs_scope!r}"
    assert sorted(acs_scope.split(",")) == sorted(str(getattr(s, "value", s)) for s in scopes)
    assert payload.get("skypeid") == user_id.removeprefix("8:"), payload.get("skypeid")
    assert payload.get("resourceId") == resource_id, payload.get("resourceId")

    # The chat SDK's credential parses the same token, as an app would.
    credential = CommunicationTokenCredential(token)
    try:
        assert credential.get_token().expires_on == exp
    finally:
        credential.close()
    return payload


def error_code(exc):
    """The code of the ACS error envelope {"error":{"code":...}} carried by an SDK exception."""
    error = getattr(exc, "error", None)
    assert error is not None, f"no error envelope in {exc!r}"
    return error.code


def pct(value):
    """Percent-encodes one path segment (RFC 3986 unreserved characters kept)."""
    return quote(value, safe="")


def send(client, method, path, *, json_body=None, api_version=PREVIEW_API_VERSION):
    """Sends a request through the client's own pipeline, so it is signed like the SDK's."""
    kwargs = {"params": {"api-version": api_version}}
    if json_body is not None:
        kwargs["json"] = json_body
    return client._identity_service_client.send_request(HttpRequest(method, path, **kwargs))


def identity_of(body):
    """The identity object of a create / get / customId-lookup response body."""
    return body["identity"] if isinstance(body.get("identity"), dict) else body
