"""Two emulated regions for the multi-region tests (docs/multi-region.md): a DynamoDB
Local instance per region, the replicator between them, a callsign-local server per
region, and gates standing for the network from one region to the other's DynamoDB
endpoint, which a test can close (a partition, a region taken down).

The secrets live in moto: region A's server creates them, and moto replicates them to
region B as Secrets Manager replica secrets do.
"""

import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import uuid

import boto3

from replicator import Region, Replicator

REGION_A, REGION_B = "us-east-1", "eu-west-1"
TABLE = "callsign-regions"
SIGNING_SECRET = "callsign-regions/signing-keys"
ACCESS_SECRET = "callsign-regions/access-keys"
PUBLIC_SECRET = "callsign-regions/public-keys"
AUTHORIZER_EVENT = pathlib.Path(__file__).resolve().parents[2] / "events" / "authorizer-allowed.json"


class Gate:
    """A TCP forwarder on 127.0.0.1 to a port. Closed, it drops its connections and
    refuses new ones at once."""

    def __init__(self, target_port):
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = True
        self._sockets = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        with self._lock:
            self._open = False
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            _shut(s)

    def open(self):
        with self._lock:
            self._open = True

    def stop(self):
        self.close()
        self._listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                admitted = self._open
            if not admitted:
                _shut(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shut(source)
            _shut(sink)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def _shut(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


class Server:
    """callsign-local on a region's replica; stopped by its PID."""

    def __init__(self, name, env, run_dir):
        self.name = name
        ready = os.path.join(run_dir, f"{name}.ready.json")
        self.log_path = os.path.join(run_dir, f"{name}.log")
        env = {**env, "CALLSIGN_PORT": "0", "CALLSIGN_READY_FILE": ready}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [os.environ["CALLSIGN_LOCAL_BIN"]], env=env, stdout=log,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited: see {self.log_path}")
            try:
                with open(ready, encoding="utf-8") as f:
                    info = json.load(f)
                self.endpoint, self.access_key = info["endpoint"], info["accessKey"]
                break
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not start: see {self.log_path}")
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _port(url):
    return int(url.rsplit(":", 1)[1])


class TwoRegions:
    """Everything of one test's two regions, started in order and stopped by stop()."""

    def __init__(self, run_dir, lag=0.0):
        key = f"regions{uuid.uuid4().hex[:8]}"  # a database of its own in each instance
        self.a = Region(REGION_A, os.environ["DYNAMODB_ENDPOINT"], key)
        self.b = Region(REGION_B, os.environ["DYNAMODB_ENDPOINT_B"], key)
        self.moto = os.environ["MOTO_ENDPOINT"]
        self.resource_id = str(uuid.uuid4())
        self._run_dir = run_dir
        self._secret_suffix = key
        self.servers = {}
        self.gates = {}
        self.replicator = None
        try:
            for region in (self.a, self.b):
                region.create_table(TABLE)
            self.replicator = Replicator([self.a, self.b], TABLE, lag=lag).start()
            # The network from each region to the other's DynamoDB endpoint.
            self.gates[REGION_A] = Gate(_port(self.b.endpoint))  # A reaching B
            self.gates[REGION_B] = Gate(_port(self.a.endpoint))  # B reaching A
            self.servers[REGION_A] = self._server(self.a, self.b)
            self._replicate_secrets()
            self.servers[REGION_B] = self._server(self.b, self.a)
        except BaseException:
            self.stop()
            raise

    def _secret(self, name):
        return f"{name}-{self._secret_suffix}"

    def _env(self, region, other):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "CALLSIGN_"))}
        env.update({
            "CALLSIGN_RESOURCE_ID": self.resource_id,
            "CALLSIGN_TABLE_NAME": TABLE,
            "CALLSIGN_SIGNING_KEYS_SECRET_ID": self._secret(SIGNING_SECRET),
            "CALLSIGN_ACCESS_KEYS_SECRET_ID": self._secret(ACCESS_SECRET),
            "CALLSIGN_PUBLIC_KEYS_SECRET_ID": self._secret(PUBLIC_SECRET),
            "CALLSIGN_REGIONS": f"{REGION_A},{REGION_B}",
            "CALLSIGN_DYNAMODB_ENDPOINTS": f"{other.name}={self.gates[region.name].url}",
            "AWS_REGION": region.name,
            "AWS_ACCESS_KEY_ID": region.access_key,
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL_DYNAMODB": region.endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.moto,
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        if region.name == REGION_A:
            env["CALLSIGN_BOOTSTRAP"] = "1"  # the secrets' primary region makes them
        return env

    def _server(self, region, other):
        return Server(f"callsign-{region.name}-{self._secret_suffix}",
                      self._env(region, other), self._run_dir)

    def _replicate_secrets(self):
        secrets = boto3.client("secretsmanager", endpoint_url=self.moto, region_name=REGION_A,
                               aws_access_key_id="test", aws_secret_access_key="test")
        for name in (SIGNING_SECRET, ACCESS_SECRET, PUBLIC_SECRET):
            secrets.replicate_secret_to_regions(
                SecretId=self._secret(name), AddReplicaRegions=[{"Region": REGION_B}])

    def server(self, region):
        return self.servers[region]

    def authorize(self, region, token):
        """The authorizer function's answer in `region` (`callsign-local authorize`, a new
        process each time: no revocation cache) to a chat request carrying `token`."""
        event = AUTHORIZER_EVENT.read_text().replace("<a callsign access token>", token)
        path = os.path.join(self._run_dir, f"authorize-{uuid.uuid4().hex[:8]}.json")
        with open(path, "w") as file:
            file.write(event)
        here, other = (self.a, self.b) if region == REGION_A else (self.b, self.a)
        env = self._env(here, other)
        env.pop("CALLSIGN_BOOTSTRAP", None)
        try:
            answer = subprocess.run([os.environ["CALLSIGN_LOCAL_BIN"], "authorize", path], env=env,
                                    capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(path)  # it holds a live token
        assert answer.returncode == 0, answer.stderr[-2000:]
        return json.loads(answer.stdout)["isAuthorized"]

    def take_down(self, region):
        """The region is gone: its server stops, its replica is out of reach."""
        self.servers[region].stop()
        other = REGION_B if region == REGION_A else REGION_A
        self.gates[other].close()
        self.replicator.take_down(region)

    def partition(self):
        for gate in self.gates.values():
            gate.close()
        self.replicator.partition(REGION_A, REGION_B)

    def heal(self):
        for gate in self.gates.values():
            gate.open()
        self.replicator.heal(REGION_A, REGION_B)

    def stop(self):
        for server in self.servers.values():
            server.stop()
        if self.replicator:
            self.replicator.stop()
        for gate in self.gates.values():
            gate.stop()
