"""A test stand-in for DynamoDB global tables' replication between emulated regions
(docs/multi-region.md).

It reads each region's table stream and applies each change to every other region, last
writer wins per item, with an injectable lag and partitions.
- A region is a DynamoDB Local database: an endpoint, plus the region name and credentials
  that pick the database.
- A change's time is when the replicator first reads it from its stream. It polls every
  few milliseconds, whatever the lag.
- The changes it applies show up in the target's stream too. It recognises them and does
  not send them back.

The known gap: global tables apply a change atomically against the target's latest
write. Here a local write landing between the replicator's last read of the target's
stream and its put can be overwritten. Tests that race one item across regions read the
streams to the end before they check.
"""

import json
import threading
import time
from dataclasses import dataclass, field

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# What a region being stopped or unreachable raises; anything else is a bug to surface.
UNREACHABLE = (BotoCoreError, ClientError)


@dataclass
class Region:
    name: str
    endpoint: str
    access_key: str

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.name,
                            aws_access_key_id=self.access_key, aws_secret_access_key="test")

    def create_table(self, table):
        """A table as template.yaml and `create_table_if_missing` make it: `pk`, a stream
        with both images, TTL on `expiresAt`."""
        db = self.client("dynamodb")
        db.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        db.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})


@dataclass
class _Change:
    source: str
    key: str
    keys: dict
    image: dict | None  # None: the item was removed
    at: float
    deliver_at: dict = field(default_factory=dict)


def _fingerprint(keys, image):
    return json.dumps([keys, image], sort_keys=True)


class Replicator:
    def __init__(self, regions, table, lag=0.0, poll=0.005):
        self.regions = {r.name: r for r in regions}
        self.table = table
        self.lag = lag
        self.poll = poll
        self._db = {r.name: r.client("dynamodb") for r in regions}
        self._streams = {r.name: r.client("dynamodbstreams") for r in regions}
        self._iterators = {r.name: {} for r in regions}
        self._stream_arns = {}
        self._pending = []  # changes not yet applied everywhere
        self._last = {}  # (region, key) -> time of the latest write that region holds
        self._echoes = {r.name: {} for r in regions}  # fingerprint -> count, per region
        self._cut = set()  # frozenset({a, b}) pairs that cannot reach each other
        self._down = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.applied = 0

    # ---- control --------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def partition(self, a, b):
        with self._lock:
            self._cut.add(frozenset((a, b)))

    def heal(self, a, b):
        with self._lock:
            self._cut.discard(frozenset((a, b)))

    def take_down(self, region):
        with self._lock:
            self._down.add(region)

    def bring_up(self, region):
        with self._lock:
            self._down.discard(region)

    def wait_converged(self, timeout=30.0):
        """Waits until every change read so far is applied everywhere it can be, and
        the streams have nothing new; True if so within `timeout`."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            with self._lock:
                idle = not self._pending
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > max(0.3, 20 * self.poll):
                    return True
            else:
                quiet_since = None
            time.sleep(self.poll)
        return False

    # ---- the loop -------------------------------------------------------------------
    def _run(self):
        while not self._stop.is_set():
            for name in self.regions:
                if name not in self._down:
                    self._read(name)
            self._deliver()
            time.sleep(self.poll)

    def _shards(self, name):
        streams = self._streams[name]
        if name not in self._stream_arns:  # a table's stream is fixed: one lookup
            table = self._db[name].describe_table(TableName=self.table)["Table"]
            self._stream_arns[name] = table["LatestStreamArn"]
        arn = self._stream_arns[name]
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            if shard["ShardId"] not in self._iterators[name]:
                iterator = streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._iterators[name][shard["ShardId"]] = iterator

    def _read(self, name):
        try:
            self._shards(name)
            for shard, iterator in list(self._iterators[name].items()):
                if iterator is None:
                    continue
                page = self._streams[name].get_records(ShardIterator=iterator)
                self._iterators[name][shard] = page.get("NextShardIterator")
                for record in page["Records"]:
                    self._observe(name, record)
        except UNREACHABLE:  # a region being stopped: read it again later
            pass

    def _observe(self, name, record):
        data = record["dynamodb"]
        keys = data["Keys"]
        image = None if record["eventName"] == "REMOVE" else data.get("NewImage")
        key = json.dumps(keys, sort_keys=True)
        fingerprint = _fingerprint(keys, image)
        now = time.monotonic()
        with self._lock:
            echoes = self._echoes[name]
            if echoes.get(fingerprint):
                echoes[fingerprint] -= 1  # our own apply, coming back
                return
            self._last[(name, key)] = now
            change = _Change(name, key, keys, image, now)
            for target in self.regions:
                if target != name:
                    change.deliver_at[target] = now + self.lag
            self._pending.append(change)

    def _deliver(self):
        now = time.monotonic()
        with self._lock:
            due = []
            for change in self._pending:
                for target, at in list(change.deliver_at.items()):
                    if at <= now and frozenset((change.source, target)) not in self._cut \
                            and target not in self._down and change.source not in self._down:
                        due.append((change, target))
        for change, target in due:
            if self._apply(change, target):
                with self._lock:
                    del change.deliver_at[target]
        with self._lock:
            self._pending = [c for c in self._pending if c.deliver_at]

    def _apply(self, change, target):
        with self._lock:
            newer_there = self._last.get((target, change.key), float("-inf")) > change.at
        if newer_there:
            return True  # last writer wins: the target holds a later write
        fingerprint = _fingerprint(change.keys, change.image)
        with self._lock:
            self._echoes[target][fingerprint] = self._echoes[target].get(fingerprint, 0) + 1
        try:
            if change.image is None:
                old = self._db[target].delete_item(TableName=self.table, Key=change.keys,
                                                   ReturnValues="ALL_OLD").get("Attributes")
            else:
                old = self._db[target].put_item(TableName=self.table, Item=change.image,
                                                ReturnValues="ALL_OLD").get("Attributes")
        except UNREACHABLE:
            with self._lock:
                self._echoes[target][fingerprint] -= 1
            return False  # the target is unreachable: try again later
        with self._lock:
            if old == change.image:  # nothing changed there, so no stream record comes back
                self._echoes[target][fingerprint] -= 1
            self._last[(target, change.key)] = change.at
            self.applied += 1
        return True
