"""Start-up, latency and memory of a callsign function next to a hello-world lambda_http
one, both host builds with the release profile, each started again and again against a
local Runtime API (runtime_api.py) on 127.0.0.1. The AWS endpoints it calls (Secrets
Manager at start, DynamoDB per request) are a stand-in here (FakeAws) that answers at
once, so that only the function's own work counts (or, with --aws-latency-ms, as late
as a network would); TLS is not involved (plain http to 127.0.0.1), but the function
builds its HTTPS-capable clients exactly as in Lambda.

    python cold_start.py --function target/release/issue-token --event events/issue-token.json \
        --hello target/release/hello-lambda --sign-with target/debug/callsign-local \
        [--starts 15] [--aws-latency-ms N]

Prints, for each binary: the median time from process start to its first
GET /invocation/next, the first invocation's latency, the median warm latency (20
invocations), and the resident memory after them; the function's start-up over the
hello-world's, from the medians and round by round; then the function's AWS calls per
start and the stand-in's own time per answer. Figures, not assertions.
"""

import argparse
import base64
import collections
import json
import multiprocessing
import os
import secrets
import selectors
import socket
import statistics
import subprocess
import threading
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtime_api import RuntimeApi

RESOURCE = "2dee53b4-368b-45b4-ab52-8493fb117652"
IDENTITY = f"8:acs:{RESOURCE}_00000005-14a2-493b-8a72-5a3a0d000081"
WARM_INVOCATIONS = 20


def generated_secrets():
    """A signing key set and access keys, made for this run (none is committed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signing = {"current": {"kid": "coldstart1", "alg": "ES256", "privateKey": base64.b64encode(der).decode()}}
    access = {
        "primaryKey": base64.b64encode(secrets.token_bytes(64)).decode(),
        "secondaryKey": base64.b64encode(secrets.token_bytes(64)).decode(),
    }
    return {"signing": json.dumps(signing), "access": json.dumps(access)}, access["primaryKey"]


class FakeAws:
    """Secrets Manager's GetSecretValue and BatchGetSecretValue and DynamoDB's UpdateItem,
    answered at once (or `latency_s` late), so that only the function's own work counts:
    a process of its own (sharing no interpreter lock with the Runtime API's threads,
    which would delay its answers) running one selector loop over keep-alive connections,
    and Secrets Manager's answers, which depend on the request alone, kept once made. It
    counts the calls by target, and times its own share of each answer."""

    def __init__(self, values, latency_s=0.0):
        self.values = values
        self.latency_s = latency_s
        self.calls = collections.Counter()
        self.answering_s = []
        self._answers = {}
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        # Forked before any Runtime API thread starts; a daemon, so it ends with this one.
        context = multiprocessing.get_context("fork")
        self._control, theirs = context.Pipe()
        self._process = context.Process(target=self._serve, args=(listener, theirs), daemon=True)
        self._process.start()
        listener.close()
        theirs.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def shutdown(self):
        """Stops the stand-in's process; its counts and timings come back here."""
        self._control.send("stop")
        if not self._control.poll(10):
            raise RuntimeError("the stand-in AWS did not stop")
        self.calls, self.answering_s = self._control.recv()
        self._process.join(timeout=10)

    def _serve(self, listener, control):
        # The child keeps only its own end of the pipe, so that the parent's death ends it.
        self._control.close()
        listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        selector.register(control, selectors.EVENT_READ)
        pending = {}
        while True:
            for key, _ in selector.select():
                if key.fileobj is control:
                    try:
                        control.recv()
                        control.send((self.calls, self.answering_s))
                    except (EOFError, OSError):
                        pass  # the parent is gone
                    return
                if key.fileobj is listener:
                    try:
                        connection, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(connection, selectors.EVENT_READ)
                    pending[connection] = b""
                    continue
                connection = key.fileobj
                try:
                    data = connection.recv(65536)
                    if data:
                        pending[connection] = self._answer_whole_requests(connection, pending[connection] + data)
                        continue
                except (OSError, ValueError, KeyError):
                    pass  # a request it cannot read ends its connection, not the stand-in
                # A stopped function drops its keep-alive connections: that one alone ends.
                selector.unregister(connection)
                connection.close()
                pending.pop(connection, None)

    def _answer_whole_requests(self, connection, buffered):
        """Answers every complete request in `buffered`; returns what is left of it."""
        while b"\r\n\r\n" in buffered:
            started = time.perf_counter()
            head, _, rest = buffered.partition(b"\r\n\r\n")
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(rest) < length:
                return buffered
            body, buffered = rest[:length], rest[length:]
            target = headers.get("x-amz-target", "")
            self.calls[target] += 1
            response = self._response(target, body)
            self.answering_s.append(time.perf_counter() - started)
            if self.latency_s:
                # One request in flight at a time (one function, one batch call at start):
                # holding the loop delays no other answer.
                time.sleep(self.latency_s)
            connection.sendall(response)
        return buffered

    def _response(self, target, body):
        key = (target, body)
        if key in self._answers:
            return self._answers[key]
        status, kind, data = self._answer(target, body)
        reason = "OK" if status == 200 else "Bad Request"
        response = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\n"
                    f"content-length: {len(data)}\r\n\r\n").encode() + data
        if target.startswith("secretsmanager."):
            self._answers[key] = response
        return response

    def _secret(self, name):
        return {
            "ARN": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}",
            "Name": name,
            "VersionId": "00000000-0000-4000-8000-000000000001",
            "SecretString": self.values[name],
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.7e9,
        }

    def _answer(self, target, body):
        request = json.loads(body or b"{}")
        if target == "secretsmanager.GetSecretValue":
            name = request["SecretId"]
            if name not in self.values:
                answer = {"__type": "ResourceNotFoundException", "message": name}
                return 400, "application/x-amz-json-1.1", json.dumps(answer).encode()
            return 200, "application/x-amz-json-1.1", json.dumps(self._secret(name)).encode()
        if target == "secretsmanager.BatchGetSecretValue":
            ids = request["SecretIdList"]
            answer = {
                "SecretValues": [self._secret(name) for name in ids if name in self.values],
                "Errors": [{"SecretId": name, "ErrorCode": "ResourceNotFoundException", "Message": name}
                           for name in ids if name not in self.values],
            }
            return 200, "application/x-amz-json-1.1", json.dumps(answer).encode()
        if target == "DynamoDB_20120810.UpdateItem":
            now = str(int(time.time() * 1000))
            answer = {"Attributes": {
                "pk": {"S": f"ID#{IDENTITY}"}, "id": {"S": IDENTITY}, "createdAt": {"N": now},
                "lastTokenIssuedAt": {"N": now}, "revocationEpoch": {"N": "0"}, "ephemeral": {"BOOL": False},
            }}
            return 200, "application/x-amz-json-1.0", json.dumps(answer).encode()
        answer = {"__type": "UnknownOperationException", "message": target}
        return 400, "application/x-amz-json-1.0", json.dumps(answer).encode()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_once(binary, env, event):
    api = RuntimeApi(os.path.basename(binary))
    threading.Thread(target=api.serve_forever, daemon=True).start()
    environment = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/coldstart",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        **env,
    }
    started = time.monotonic()
    process = subprocess.Popen([binary], env=environment, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Waits on an event, not a polling loop: a loop's wake-ups would take turns on the
        # cores with the process being measured and the stand-in AWS answering it.
        while not api.polled.wait(0.01):
            if process.poll() is not None:
                raise RuntimeError(f"{binary} exited with {process.returncode} before its first poll")
            if time.monotonic() - started > 30:
                raise RuntimeError(f"{binary} did not poll within 30 s")
        start_ms = (api.first_poll - started) * 1000
        timed = []
        for _ in range(1 + WARM_INVOCATIONS):
            before = time.monotonic()
            answer = api.invoke(event, timeout=30, exited=process.poll)
            timed.append((time.monotonic() - before) * 1000)
            assert answer.get("statusCode", 200) == 200, answer
        return start_ms, timed[0], statistics.median(timed[1:]), rss_kb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
        api.shutdown()


def measure(contenders, starts):
    """Starts each of `contenders` ((binary, env, event)) in turn, `starts` rounds, so that
    whatever else the machine does weighs on both alike; their medians, and each round's
    start-up time."""
    runs = [[] for _ in contenders]
    for _ in range(starts):
        for (binary, env, event), own in zip(contenders, runs):
            own.append(start_once(binary, env, event))
    figures = []
    for (binary, _, _), own in zip(contenders, runs):
        column = lambda i: statistics.median(run[i] for run in own)  # noqa: E731
        figures.append({"start_ms": column(0), "first_ms": column(1), "warm_ms": column(2),
                        "rss_mb": column(3) / 1024, "size_mb": os.path.getsize(binary) / 1e6,
                        "starts_ms": [run[0] for run in own]})
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--function", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--hello", required=True)
    parser.add_argument("--sign-with", required=True, help="callsign-local, for sign-event")
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--aws-latency-ms", type=float, default=0.0,
                        help="delay every AWS answer (a network round trip, as in Lambda); 0: at once")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="more environment for the function (e.g. to try a setting)")
    args = parser.parse_args()

    values, primary = generated_secrets()
    aws = FakeAws(values, args.aws_latency_ms / 1000)
    signed = subprocess.run([args.sign_with, "sign-event", args.event], capture_output=True, text=True,
                            env={**os.environ, "CALLSIGN_ACCESS_KEY": primary, "CALLSIGN_RESOURCE_ID": RESOURCE},
                            check=True).stdout
    env = {
        "CALLSIGN_RESOURCE_ID": RESOURCE,
        "CALLSIGN_TABLE_NAME": "coldstart",
        "CALLSIGN_SIGNING_KEYS_SECRET_ID": "signing",
        "CALLSIGN_ACCESS_KEYS_SECRET_ID": "access",
        "AWS_ACCESS_KEY_ID": "coldstart", "AWS_SECRET_ACCESS_KEY": "coldstart", "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws.url,
        "AWS_ENDPOINT_URL_DYNAMODB": aws.url,
        "RUST_LOG": "info",
        **dict(pair.split("=", 1) for pair in args.env),
    }
    hello_event = json.loads(open(args.event).read())
    function, hello = measure([(args.function, env, json.loads(signed)), (args.hello, {}, hello_event)],
                              args.starts)
    aws.shutdown()
    print(f"{'':28} {'start (ms)':>10} {'first (ms)':>10} {'warm (ms)':>10} {'RSS (MB)':>9} {'size (MB)':>9}")
    for name, figures in [(os.path.basename(args.function), function), ("hello-lambda", hello)]:
        print(f"{name:28} {figures['start_ms']:10.2f} {figures['first_ms']:10.2f} {figures['warm_ms']:10.2f}"
              f" {figures['rss_mb']:9.1f} {figures['size_mb']:9.1f}")
    # Each round's two starts, taken back to back, share the machine's speed at the time:
    # their ratio drifts less than the medians do on a machine whose speed wanders.
    low, middle, high = statistics.quantiles(
        (mine / theirs for mine, theirs in zip(function["starts_ms"], hello["starts_ms"])), n=4)
    print(f"start-up: {function['start_ms'] / hello['start_ms']:.2f}x the hello-world function's"
          f" ({args.starts} starts each, in turn; medians); round by round {middle:.2f}x"
          f" (quartiles {low:.2f}-{high:.2f}x)")
    secrets_calls = {target: count / args.starts for target, count in aws.calls.items()
                     if target.startswith("secretsmanager.")}
    print(f"Secrets Manager calls per start: {secrets_calls}; the stand-in's own time per answer:"
          f" {statistics.median(aws.answering_s) * 1e6:.0f} µs (median)")


if __name__ == "__main__":
    main()
