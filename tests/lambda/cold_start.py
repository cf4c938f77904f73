"""Start-up, latency and memory of a callsign function next to a hello-world lambda_http
one, both host builds with the release profile, each started again and again against a
local Runtime API (runtime_api.py) on 127.0.0.1. The AWS endpoints it calls (Secrets
Manager at start, DynamoDB per request) are an asyncio stand-in here that answers at
once, so that only the function's own work counts; TLS is not involved (plain http to
127.0.0.1), but the function builds its HTTPS-capable clients exactly as in Lambda.

    python cold_start.py --function target/release/issue-token --event events/issue-token.json \
        --hello target/release/hello-lambda --sign-with target/debug/callsign-local [--starts 15]

Prints, for each binary: the median time from process start to its first
GET /invocation/next, the first invocation's latency, the median warm latency (20
invocations), and the resident memory after them. Figures, not assertions.
"""

import argparse
import asyncio
import base64
import json
import os
import secrets
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
    """Secrets Manager's GetSecretValue and DynamoDB's UpdateItem, answered at once: an
    asyncio server on its own thread with keep-alive connections, so that its own time
    (tens of microseconds a request) weighs as little as it can on the start-up figure."""

    def __init__(self, values):
        self.values = values
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()

    def _serve(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def shutdown(self):
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _connection(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, kind, data = self._answer(headers.get("x-amz-target", ""), body)
                reason = "OK" if status == 200 else "Bad Request"
                writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\n"
                             f"content-length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # a stopped function drops its keep-alive connections: expected here
        finally:
            writer.close()

    def _answer(self, target, body):
        request = json.loads(body or b"{}")
        if target == "secretsmanager.GetSecretValue":
            name = request["SecretId"]
            answer = {
                "ARN": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}",
                "Name": name,
                "VersionId": "00000000-0000-4000-8000-000000000001",
                "SecretString": self.values[name],
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1.7e9,
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
        while api.first_poll is None:
            if process.poll() is not None:
                raise RuntimeError(f"{binary} exited with {process.returncode} before its first poll")
            if time.monotonic() - started > 30:
                raise RuntimeError(f"{binary} did not poll within 30 s")
            time.sleep(0.0002)
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


def measure(binary, env, event, starts):
    runs = [start_once(binary, env, event) for _ in range(starts)]
    column = lambda i: statistics.median(run[i] for run in runs)  # noqa: E731
    return {"start_ms": column(0), "first_ms": column(1), "warm_ms": column(2), "rss_mb": column(3) / 1024,
            "size_mb": os.path.getsize(binary) / 1e6}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--function", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--hello", required=True)
    parser.add_argument("--sign-with", required=True, help="callsign-local, for sign-event")
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="more environment for the function (e.g. to try a setting)")
    args = parser.parse_args()

    values, primary = generated_secrets()
    aws = FakeAws(values)
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
    function = measure(args.function, env, json.loads(signed), args.starts)
    hello = measure(args.hello, {}, hello_event, args.starts)
    print(f"{'':28} {'start (ms)':>10} {'first (ms)':>10} {'warm (ms)':>10} {'RSS (MB)':>9} {'size (MB)':>9}")
    for name, figures in [(os.path.basename(args.function), function), ("hello-lambda", hello)]:
        print(f"{name:28} {figures['start_ms']:10.2f} {figures['first_ms']:10.2f} {figures['warm_ms']:10.2f}"
              f" {figures['rss_mb']:9.1f} {figures['size_mb']:9.1f}")
    print(f"start-up: {function['start_ms'] / hello['start_ms']:.1f}x the hello-world function's"
          f" ({args.starts} starts each, medians)")
    aws.shutdown()


if __name__ == "__main__":
    main()
