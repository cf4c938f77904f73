"""Schemathesis hooks: fuzz a running callsign-local against openapi.yaml.

scripts/test starts the local server (embedded store) and runs

    SCHEMATHESIS_HOOKS=tests/contract/hooks.py CALLSIGN_READY_FILE=<its ready file> \
        schemathesis run openapi.yaml --url <endpoint> ...

The ready file (JSON: endpoint, accessKey, resourceId) gives the server's endpoint and
access key. Every request is authenticated the way a real client would be, at the last
moment (a `requests` auth on the prepared request, so what is signed is exactly what goes
on the wire):

* admin routes (ACS identities, customIds, introspection): ACS HMAC-SHA256, as
  shared/spec/acs-identity-wire.md §3 says: x-ms-date, x-ms-content-sha256 (of the raw
  body bytes), and Authorization over "METHOD\\npath?query\\ndate;host;hash";
* end-user routes (/user, /user/token): a Bearer id_token of the local server's
  development issuer (POST {endpoint}/dev/oidc/token {"sub": "fuzz"});
* public routes (/.well-known/*, /guest/token): nothing.

With CALLSIGN_FUZZ_AUTH=bearer, the admin routes carry instead a bearer token of the
development issuer with every admin role (the `adminBearer` scheme), as a token
credential (DefaultAzureCredential) sends it.

Half of the Teams exchange bodies are replaced by a valid one (a Teams token of the
development issuer, with its appId and userId), so the 200 path is fuzzed too.

Generated identity ids carry random resource GUIDs (all answered 401 IdentityNotOwned);
half of them are rewritten to the server's own resource id, so unknown identities of this
resource (404) are exercised too. Existing identities come through the document's links
(stateful phase).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import threading
from email.utils import formatdate
from urllib.parse import urlsplit

import requests
import schemathesis
from hypothesis import strategies as st

_READY_FILE = os.environ.get("CALLSIGN_READY_FILE", "").strip()
if not _READY_FILE:
    raise RuntimeError(
        "CALLSIGN_READY_FILE must name callsign-local's ready file (JSON with endpoint, accessKey)"
    )
with open(_READY_FILE, encoding="utf-8") as _f:
    _READY = json.load(_f)
ENDPOINT = _READY["endpoint"].rstrip("/")
ACCESS_KEY = _READY["accessKey"]
RESOURCE_ID = _READY["resourceId"]
BEARER = os.environ.get("CALLSIGN_FUZZ_AUTH", "hmac").strip() == "bearer"
TEAMS_PATH = "/teamsUser/:exchangeAccessToken"
TEAMS_USER = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
TEAMS_APP = "1f0e5c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"

USER_PATHS = {"/user", "/user/token"}
PUBLIC_PATHS = {"/.well-known/jwks.json", "/.well-known/openid-configuration", "/guest/token"}
EMPTY_SHA256 = base64.b64encode(hashlib.sha256(b"").digest()).decode()
_ID = re.compile(r"^8:acs:[0-9A-Fa-f-]{36}_")


def sign(method, path_and_query, host, body, key=ACCESS_KEY, date=None):
    """ACS HMAC-SHA256 headers for one request (spec §3)."""
    date = date or formatdate(usegmt=True)
    content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    string_to_sign = f"{method.upper()}\n{path_and_query}\n{date};{host};{content_hash}"
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    ).decode()
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": content_hash,
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={signature}",
    }


class _DevToken:
    """A token of the development issuer, fetched once (it lives an hour; the run takes
    a few minutes)."""

    def __init__(self, route, body, field, headers=None):
        self._lock = threading.Lock()
        self._token = None
        self._request = (route, body, field, headers or {})

    def get(self):
        with self._lock:
            if self._token is None:
                route, body, field, headers = self._request
                response = requests.post(
                    f"{ENDPOINT}/dev/oidc/{route}", json=body, headers=headers, timeout=10
                )
                response.raise_for_status()
                self._token = response.json()[field]
            return self._token


_ID_TOKEN = _DevToken("token", {"sub": "fuzz"}, "id_token")
_ADMIN_TOKEN = _DevToken(
    "admin-token",
    {"roles": ["identity.admin"], "sub": "fuzz-admin"},
    "access_token",
    {"X-IDENTITY-HEADER": _READY.get("identityHeader") or ""},
)
_TEAMS_TOKEN = _DevToken("teams-token", {"oid": TEAMS_USER, "appid": TEAMS_APP}, "access_token")


class CallsignAuth(requests.auth.AuthBase):
    """Authenticates a prepared request according to the route it goes to."""

    def __call__(self, request):
        url = urlsplit(request.url)
        if url.path in PUBLIC_PATHS:
            return request
        if url.path in USER_PATHS:
            request.headers["Authorization"] = f"Bearer {_ID_TOKEN.get()}"
            return request
        if BEARER:
            request.headers["Authorization"] = f"Bearer {_ADMIN_TOKEN.get()}"
            return request
        body = request.body or b""
        if isinstance(body, str):
            # Send exactly the bytes that are hashed.
            body = body.encode("utf-8")
            request.body = body
            request.headers["Content-Length"] = str(len(body))
        if not isinstance(body, bytes):
            raise TypeError(f"cannot sign a streamed body ({type(body).__name__})")
        # request.path_url is the path and query exactly as they go on the wire; the Host
        # header urllib3 sends is the URL's netloc.
        request.headers.update(sign(request.method, request.path_url, url.netloc, body))
        return request


schemathesis.auth.set_from_requests(CallsignAuth())


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    """Half of the generated identity ids get the server's resource id."""
    value = (path_parameters or {}).get("id")
    if not isinstance(value, str) or not _ID.match(value):
        return st.just(path_parameters)
    own = dict(path_parameters, id=f"8:acs:{RESOURCE_ID}_{value[len('8:acs:') + 37:]}")
    return st.sampled_from([path_parameters, own])


@schemathesis.hook
def flatmap_body(context, body):
    """Half of the Teams exchange bodies are a valid exchange."""
    if context.operation.path != TEAMS_PATH:
        return st.just(body)
    valid = st.builds(
        lambda: {"token": _TEAMS_TOKEN.get(), "appId": TEAMS_APP, "userId": TEAMS_USER}
    )
    return st.one_of(st.just(body), valid)
