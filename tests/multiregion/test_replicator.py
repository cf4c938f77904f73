"""The replicator test tool (replicator.py) on DynamoDB Local's real streams. Two regions
are two databases of one DynamoDB Local (it keeps one per access key and region). Each
test proves one global-tables behaviour the multi-region tests will rely on.

    DYNAMODB_ENDPOINT=http://127.0.0.1:PORT pytest tests/multiregion
"""

import os
import threading
import time
import uuid

import pytest

from replicator import Region, Replicator

ENDPOINT = os.environ["DYNAMODB_ENDPOINT"]


@pytest.fixture
def regions():
    run = uuid.uuid4().hex[:8]
    a = Region("us-east-1", ENDPOINT, f"replicaA{run}")
    b = Region("eu-west-1", ENDPOINT, f"replicaB{run}")
    for region in (a, b):
        region.create_table("callsign")
    return a, b


@pytest.fixture
def replicator(regions):
    running = Replicator(list(regions), "callsign").start()
    yield running
    running.stop()


def put(region, pk, value):
    region.client("dynamodb").put_item(
        TableName="callsign", Item={"pk": {"S": pk}, "value": {"S": value}})


def get(region, pk):
    item = region.client("dynamodb").get_item(
        TableName="callsign", Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
    return item and item["value"]["S"]


def test_a_write_in_one_region_reaches_the_other(regions, replicator):
    a, b = regions
    put(a, "ID#1", "from a")
    assert replicator.wait_converged()
    assert get(b, "ID#1") == "from a"


def test_a_delete_reaches_the_other_region(regions, replicator):
    a, b = regions
    put(a, "ID#2", "doomed")
    assert replicator.wait_converged()
    a.client("dynamodb").delete_item(TableName="callsign", Key={"pk": {"S": "ID#2"}})
    assert replicator.wait_converged()
    assert get(b, "ID#2") is None


def test_concurrent_writes_of_one_item_converge_on_the_last_writer(regions, replicator):
    a, b = regions
    replicator.lag = 0.5  # both writes land before either replicates
    put(a, "CID#alice", "first")
    time.sleep(0.1)
    put(b, "CID#alice", "second")
    assert replicator.wait_converged()
    assert get(a, "CID#alice") == get(b, "CID#alice") == "second"


def test_a_partition_then_healing_loses_nothing(regions, replicator):
    a, b = regions
    replicator.partition(a.name, b.name)
    writers = [threading.Thread(target=put, args=(region, f"ID#p{i}-{region.name}", "kept"))
               for i in range(10) for region in (a, b)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    time.sleep(0.3)
    assert get(b, f"ID#p0-{a.name}") is None, "the partition let a write through"
    replicator.heal(a.name, b.name)
    assert replicator.wait_converged()
    for i in range(10):
        for source in (a, b):
            for region in (a, b):
                assert get(region, f"ID#p{i}-{source.name}") == "kept"


def test_replicated_writes_do_not_echo_back(regions, replicator):
    a, _ = regions
    put(a, "ID#3", "once")
    assert replicator.wait_converged()
    applied = replicator.applied
    time.sleep(0.5)
    assert replicator.applied == applied == 1


def test_a_region_down_catches_up_when_it_returns(regions, replicator):
    a, b = regions
    replicator.take_down(b.name)
    put(a, "ID#4", "while b was down")
    time.sleep(0.3)
    assert get(b, "ID#4") is None, "a change reached a region that is down"
    replicator.bring_up(b.name)
    assert replicator.wait_converged()
    assert get(b, "ID#4") == "while b was down"
