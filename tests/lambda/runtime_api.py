"""The built arm64 artifacts, started as Lambda starts them: each `bootstrap` that
`sam build` made runs under user-mode emulation (qemu-aarch64-static, with Debian's arm64
C library) against a small Lambda Runtime API served here on 127.0.0.1, one per function.

Artifacts(build_dir, template, env, log_dir, environments=...).invoke(binary, event) hands
one event to the function (starting it on first use, with the environment the template
gives it, see function_environments, plus `env`) and returns its answer, as
`cargo lambda invoke` would; an error the function reports raises. stop() ends every
function by its PID.
"""

import http.server
import json
import os
import pathlib
import queue
import subprocess
import threading
import time
import uuid

import yaml

API = "/2018-06-01/runtime"
QEMU = "qemu-aarch64-static"
ARM64_ROOT = "/usr/aarch64-linux-gnu"





def function_environments(template_path, references, parameters):
    """{binary: the environment template.yaml gives it}: the Globals' variables and the
    function's own, with `!Ref`s to resources taken from `references` and to parameters
    from `parameters` (else their defaults); conditions count as false (the defaults)."""
    template = yaml.load(pathlib.Path(template_path).read_text(), Loader=_RefLoader)
    defaults = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}

    def value(raw):
        if isinstance(raw, dict) and "Ref" in raw:
            name = raw["Ref"]
            if name == "AWS::NoValue":
                return None
            if name in references:
                return references[name]
            if name in parameters:
                return parameters[name]
            return defaults[name]
        if isinstance(raw, dict) and "If" in raw:
            return value(raw["If"][2])
        return str(raw)

    globals_ = template["Globals"]["Function"]["Environment"]["Variables"]
    environments = {}
    for resource in template["Resources"].values():
        if resource.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
            continue
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        resolved = {name: value(raw) for name, raw in {**globals_, **own}.items()}
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        environments[binary] = {k: v for k, v in resolved.items() if v is not None}
    return environments


class _RefLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags as plain values: `!Ref X` as {"Ref": X}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_RefLoader.add_multi_constructor("!", _tag)


def artifact_dirs(template_path, build_dir):
    """{binary name: its sam build output folder} for every Rust function."""
    template = yaml.load(pathlib.Path(template_path).read_text(), Loader=_RefLoader)
    return {
        resource["Metadata"]["BuildProperties"]["Binary"]: pathlib.Path(build_dir) / name
        for name, resource in template["Resources"].items()
        if resource.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda"
    }


class FunctionError(AssertionError):
    pass


class RuntimeApi(http.server.ThreadingHTTPServer):
    """One function's Runtime API: events go out on /invocation/next, answers come back."""

    daemon_threads = True

    def __init__(self, name):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.events = queue.Queue()
        self.answers = {}
        self.init_error = None
        self.changed = threading.Condition()
        # When the function first asked for an event: its start-up is done.
        self.first_poll = None
        self.polled = threading.Event()

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address):
        # A stopped function drops its keep-alive connection, at times while an answer
        # to it is being written (a broken pipe): nothing to report.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    def invoke(self, payload, timeout, exited=lambda: None):
        """The function's answer; `exited()` tells when its process ended (init failed)."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(payload).encode()))
        deadline = time.monotonic() + timeout
        with self.changed:
            while request_id not in self.answers and self.init_error is None:
                code = exited()
                if code is not None:
                    raise FunctionError(f"{self.name}: init failed: the process exited with {code}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FunctionError(f"{self.name}: no answer within {timeout} s")
                self.changed.wait(min(left, 0.5))
            if self.init_error is not None:
                raise FunctionError(f"{self.name}: init failed: {self.init_error[:400]}")
            kind, body = self.answers.pop(request_id)
        if kind == "error":
            raise FunctionError(f"{self.name}: the function reported an error: {body[:400]}")
        return json.loads(body) if body.strip() else None

    def answer(self, request_id, kind, body):
        with self.changed:
            if request_id is None:
                self.init_error = body
            else:
                self.answers[request_id] = (kind, body)
            self.changed.notify_all()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _body(self):
        if "chunked" in self.headers.get("transfer-encoding", ""):
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != f"{API}/invocation/next":
            return self._reply(404)
        if self.server.first_poll is None:
            self.server.first_poll = time.monotonic()
            self.server.polled.set()
        request_id, payload = self.server.events.get()
        deadline = int((time.time() + 300) * 1000)
        self._reply(200, payload, [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:us-east-1:123456789012:function:{self.server.name}"),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"),
        ])

    def do_POST(self):
        body = self._body().decode(errors="replace")
        parts = self.path[len(API):].strip("/").split("/")
        if parts[:2] == ["init", "error"]:
            self.server.answer(None, "error", body)
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            self.server.answer(parts[1], parts[2], body)
        else:
            return self._reply(404)
        self._reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])


class Artifacts:
    def __init__(self, build_dir, template, env, log_dir, log_prefix="arm64-", environments=None):
        self.dirs = artifact_dirs(template, build_dir)
        self.env = env
        # Each function's own environment, as the template gives it (none: `env` only).
        self.environments = environments or {}
        self.log_dir = pathlib.Path(log_dir)
        self.log_prefix = log_prefix
        self.running = {}

    def log_of(self, binary):
        return self.log_dir / f"{self.log_prefix}{binary}.log"

    def _start(self, binary):
        bootstrap = self.dirs[binary] / "bootstrap"
        if not bootstrap.is_file():
            raise FunctionError(f"{binary}: sam build made no {bootstrap}")
        api = RuntimeApi(binary)
        threading.Thread(target=api.serve_forever, daemon=True).start()
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": binary,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{binary}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "qemu",
            **self.environments.get(binary, {}),
            **self.env,
        }
        log = open(self.log_of(binary), "wb")
        process = subprocess.Popen(
            [QEMU, "-L", ARM64_ROOT, str(bootstrap)], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        self.running[binary] = (api, process, log)

    def invoke(self, binary, payload):
        if binary not in self.running:
            self._start(binary)
        api, process, _ = self.running[binary]
        return api.invoke(payload, timeout=180, exited=process.poll)

    def stop(self):
        for api, process, log in self.running.values():
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            api.shutdown()
            api.server_close()
            log.close()
        self.running.clear()
