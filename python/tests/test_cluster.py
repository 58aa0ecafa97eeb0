"""The package's `engine` argument: a real Ballista cluster (a scheduler and one executor
from the featurecraft binary, on free loopback ports) gives the local answers; a wrong or
unreachable engine is a typed error. The cluster has a shared secret, which the package
reads from its process's environment as the processes do."""

import os
import signal
import socket
import subprocess
import time

import pyarrow.parquet as pq
import pytest

import featurecraft as fc
from conftest import CATALOG, FIXTURES, cli_binary

RECIPE = FIXTURES / "recipes" / "good" / "churn_basic.json"
SECRET_ENV = "FEATURECRAFT_CLUSTER_SECRET"


def free_port(pair=False):
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_for(port, process):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert process.poll() is None, "the cluster process exited"
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster")
    scheduler_port = free_port()
    processes = []
    os.environ[SECRET_ENV] = "python-suite-" + "s" * 32
    try:
        scheduler = subprocess.Popen(
            [str(cli_binary()), "cluster", "scheduler", "--bind", f"127.0.0.1:{scheduler_port}"],
            stdout=subprocess.DEVNULL, stderr=open(work / "scheduler.log", "w"))
        processes.append(scheduler)
        wait_for(scheduler_port, scheduler)
        port = free_port(pair=True)
        executor = subprocess.Popen(
            [str(cli_binary()), "cluster", "executor", "--scheduler", f"127.0.0.1:{scheduler_port}",
             "--bind", f"127.0.0.1:{port}", "--work-dir", str(work / "executor")],
            stdout=subprocess.DEVNULL, stderr=open(work / "executor.log", "w"))
        processes.append(executor)
        wait_for(port, executor)
        yield f"ballista://127.0.0.1:{scheduler_port}"
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        del os.environ[SECRET_ENV]


def test_validate_and_materialize_on_a_cluster_equal_the_local_run(cluster, tmp_path):
    local = fc.validate(RECIPE, CATALOG, sample_size=300)
    remote = fc.validate(RECIPE, CATALOG, sample_size=300, engine=cluster)
    assert remote.summary == local.summary
    os.environ[SECRET_ENV] = "not-the-secret-" + "x" * 32
    try:
        with pytest.raises(fc.QueryError, match="secret"):
            fc.validate(RECIPE, CATALOG, sample_size=300, engine=cluster)
    finally:
        os.environ[SECRET_ENV] = "python-suite-" + "s" * 32
    local_table = fc.materialize(RECIPE, CATALOG, tmp_path / "local")
    remote_table = fc.materialize(RECIPE, CATALOG, tmp_path / "cluster", engine=cluster)
    want = {r["customer_id"]: r for r in pq.read_table(local_table).to_pylist()}
    got = {r["customer_id"]: r for r in pq.read_table(remote_table).to_pylist()}
    assert len(got) == len(want) == local.summary["estimated_row_count"]
    assert got.keys() == want.keys()
    for key, row in want.items():
        for name, a in row.items():
            b = got[key][name]
            close = isinstance(a, float) and abs(a - b) <= 1e-9 * max(abs(a), 1.0)
            assert a == b or close, (key, name, a, b)


def test_a_wrong_engine_is_a_value_error_and_an_unreachable_one_a_query_error():
    with pytest.raises(ValueError, match="engine"):
        fc.validate(RECIPE, CATALOG, engine="spark://host:7077")
    port = free_port()
    with pytest.raises(fc.QueryError, match=f"cannot reach the Ballista scheduler at 127.0.0.1:{port}"):
        fc.validate(RECIPE, CATALOG, engine=f"ballista://127.0.0.1:{port}")
