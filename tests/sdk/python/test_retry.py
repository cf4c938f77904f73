"""A create whose answer is lost on the way back: the SDK retries it (same
x-ms-client-request-id) and must get the identity the first attempt made, not a second
one. A proxy between the official SDK and callsign swallows the first 201 and answers 504
instead, as a gateway whose backend connection broke would."""

import http.client
import http.server
import threading
import urllib.parse

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.credentials import AzureKeyCredential


class LossyProxy(http.server.ThreadingHTTPServer):
    """Forwards to `upstream`; the first 201 of a POST /identities is swallowed."""

    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urllib.parse.urlsplit(upstream)
        self.swallowed = []  # (client request id, body) of the lost answers
        self.creates = []  # client request ids of every create that passed
        self.lock = threading.Lock()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        proxy = self.server
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
        # The Host header stays the proxy's: it is what the client signed.
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
        answer = upstream.getresponse()
        payload = answer.read()
        request_id = self.headers.get("x-ms-client-request-id")
        is_create = self.command == "POST" and self.path.startswith("/identities?")
        with proxy.lock:
            if is_create:
                proxy.creates.append(request_id)
            lose = is_create and answer.status == 201 and not proxy.swallowed
            if lose:
                proxy.swallowed.append((request_id, payload))
        if lose:
            self.send_response(504)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _forward


@pytest.fixture
def lossy(endpoint):
    proxy = LossyProxy(endpoint)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def _client(proxy, access_key):
    # Quick retries: the test waits for the SDK's own backoff otherwise.
    return CommunicationIdentityClient(proxy.endpoint, AzureKeyCredential(access_key), retry_backoff_factor=0.05)


def test_a_create_whose_answer_was_lost_returns_the_first_identity_on_retry(lossy, access_key, client):
    user = _client(lossy, access_key).create_user()
    (request_id, lost), = lossy.swallowed
    assert lossy.creates == [request_id, request_id], "the SDK retried with the same request id"
    assert user.properties["id"] in lost.decode(), "the retry answered with the lost identity"
    # The identity exists once: the server knows it.
    token = client.get_token(user, [CommunicationTokenScope.CHAT])
    assert token.token


def test_a_create_with_a_token_whose_answer_was_lost_gets_a_fresh_token(lossy, access_key):
    user, token = _client(lossy, access_key).create_user_and_token([CommunicationTokenScope.VOIP])
    (_, lost), = lossy.swallowed
    assert user.properties["id"] in lost.decode()
    assert token.token
