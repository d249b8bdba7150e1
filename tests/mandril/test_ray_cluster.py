"""The harness on a real two-node Ray cluster on this machine: a head and a worker node, each its own
``ray start`` (its own raylet and object store), joined with ``--ray-address``.

The nodes start without this checkout on their path, so the project's code reaches their workers only
the way it reaches a real cluster's: the driver ships it (a ``runtime_env`` ``working_dir``). Checked: the
smoke suite's records equal a local run's; each prepared state goes to the object store once; a worker
node killed mid-run loses no saved cell, and ``--resume`` completes the run with the records of an
uninterrupted one. The nodes are always stopped, and every process of theirs is gone at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

ray = pytest.importorskip("ray")

from mandril.bench import load_suite, units_of  # noqa: E402
from mandril.bench.cells import preparations_of  # noqa: E402
from mandril.bench.runners import _Ray  # noqa: E402
from mandril.cli import main  # noqa: E402
from run_records import comparable  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the nodes' processes through Linux /proc")]

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "benchmarks" / "suites" / "smoke.toml"
RUN = ["bench", "run", str(SMOKE), "--quiet", "--no-report", "--backend", "ray", "--workers", "2"]

#: the nodes' settings: quiet, no usage report, a dead node noticed in about two seconds (default 15-30 s), and
#: Ray's token authentication off on this loopback cluster (Ray 2.60 turns it on for a head node when a token file
#: happens to exist in ~/.ray; the drivers here get the same setting, see ``auth_mode``)
NODE_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3", "RAY_AUTH_MODE": "disabled"}


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (Linux), so a killed test run leaves no node."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG




def saved(directory: Path) -> dict[str, bytes]:
    """The record files written so far (each written atomically: complete or absent)."""
    return {p.name: p.read_bytes() for p in (directory / "records").glob("*.jsonl")} if (directory / "records").is_dir() else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_processes(sid: int) -> list[int]:
    """Process ids of the live (not zombie) processes of session ``sid`` (a node's ``ray start`` leads its own session)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


class Node:
    """One Ray node: ``ray start --block`` in a session of its own, so its raylet, object store and workers
    (started by it, Ray's processes keep the session) can all be found, and stopped, by that session."""

    def __init__(self, log: Path, head_port: int, temp_dir: Optional[Path] = None) -> None:
        ray_cli = Path(sys.executable).with_name("ray")
        command = [str(ray_cli)] if ray_cli.is_file() else [sys.executable, "-m", "ray.scripts.scripts"]
        command += ["start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", f"--object-store-memory={100 * 2**20}",
                    "--min-worker-port=0", "--max-worker-port=0", f"--dashboard-agent-listen-port={_free_port()}",
                    f"--metrics-export-port={_free_port()}", "--disable-usage-stats", "--log-style=record", "--log-color=false"]
        if temp_dir is not None:  # the head
            command += ["--head", f"--port={head_port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
                        f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}"]
        else:
            command += [f"--address=127.0.0.1:{head_port}"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | NODE_ENV  # the nodes do not see this checkout
        self.log = log
        self.process = subprocess.Popen(command, cwd=log.parent, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)

    def processes(self) -> list[int]:
        return _session_processes(self.process.pid)

    def kill_raylet(self) -> None:
        """SIGKILL the node's raylet, as a machine lost to the cluster: its workers and object store go with it."""
        for pid in self.processes():
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                os.kill(pid, signal.SIGKILL)
                return
        raise AssertionError(f"no raylet among the node's processes; its log:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM (``ray start`` stops its processes), then SIGKILL whatever of the node is left; reap ``ray start``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(50):
            left = self.processes()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


class Cluster:
    """A head node and worker nodes on this machine (each with one CPU)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # a short path: Ray's socket paths live under it and a Unix socket path is at most 107 bytes
        self.temp_dir = Path(f"/tmp/ray-{os.getpid()}-{self.port}")
        self.head = Node(directory / "head.log", self.port, self.temp_dir)
        self.workers: list[Node] = []
        self.stopped: list[Node] = []

    def add_worker(self) -> Node:
        node = Node(self.directory / f"worker{len(self.workers) + len(self.stopped)}.log", self.port)
        self.workers.append(node)
        return node

    def alive_nodes(self) -> tuple[int, str]:
        """The number of live nodes, asked from another process, and what that process said on stderr."""
        probe = subprocess.run([sys.executable, "-c", _COUNT_NODES, self.address], capture_output=True, text=True, timeout=120)
        return int(probe.stdout.strip() or -1), probe.stderr.strip()[-1000:]

    def wait_for(self, nodes: int, timeout: float = 240) -> None:
        deadline, said = time.time() + timeout, ""
        while time.time() < deadline:
            for node in [self.head, *self.workers]:
                if node.process.poll() is not None:
                    raise AssertionError(f"a node exited with {node.process.returncode}:\n{node.log.read_text()[-3000:]}")
            alive, said = self.alive_nodes()
            if alive == nodes:
                return
            time.sleep(0.5)
        raise AssertionError(f"the cluster did not reach {nodes} nodes in {timeout} s; the last probe said: {said}\n"
                             f"the head's log: {self.head.log.read_text()[-2000:]}")

    def processes(self) -> list[int]:
        return [pid for node in [self.head, *self.workers, *self.stopped] for pid in node.processes()]

    def shutdown(self) -> None:
        for node in [*reversed(self.workers), *self.stopped, self.head]:
            node.stop()


# the number of live nodes, asked from another process (this one stays out of the cluster but when it runs jobs on it)
_COUNT_NODES = """
import logging, sys
logging.disable(logging.WARNING)
from ray._raylet import GcsClient
print(sum(1 for n in GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values() if n.state == 0))
"""


@pytest.fixture(scope="module", autouse=True)
def auth_mode():
    """This process and the drivers it starts talk to the cluster without a token, as its nodes expect."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", NODE_ENV["RAY_AUTH_MODE"])
        yield


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, auth_mode):
    directory = tmp_path_factory.mktemp("cluster")
    made = Cluster(directory)
    try:
        made.wait_for(1)
        made.add_worker()
        made.wait_for(2)
        yield made
    finally:
        made.shutdown()
        left = made.processes()
        shutil.rmtree(made.temp_dir, ignore_errors=True)
        assert not left, f"processes of the cluster still running: {left}"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    assert main(["bench", "run", str(SMOKE), "--out", str(out), "--quiet", "--no-report"]) == 0
    return out


def test_the_nodes_run_the_drivers_code_shipped_with_the_jobs(cluster):
    def where_mandril_is() -> str:  # pickled by value: the nodes cannot import this test module
        import mandril

        return mandril.__path__[0]

    executor = _Ray(1, cluster.address)
    try:
        where = executor.submit(where_mandril_is).result(timeout=120)
    finally:
        executor.shutdown()
    assert not ray.is_initialized()
    assert where.startswith(str(cluster.temp_dir)) and "/runtime_resources/working_dir_files/" in where, where


# A driver in a fresh process, as the CLI always is: a process that already ran a local Ray session (an earlier
# test of the same pytest run) and then joins a cluster hands the workers an owner address they cannot reach
# (ray.exceptions.OwnerDiedError for its ray.put objects). It counts the object-store puts and what each unit got.
_COUNTING_DRIVER = """
import json, sys
from mandril.bench.runners import _Ray
from mandril.cli import main
puts, states = [], []
share, submit = _Ray.share, _Ray.submit
def counting_share(self, value):
    ref = share(self, value)
    puts.append([type(ref).__name__, ref.hex()])
    return ref
def watching_submit(self, fn, *args):
    if fn.__name__ == "run_unit" and args[1].needs_preparation:
        states.append([args[1].preparation.id, type(args[2]).__name__, args[2].hex()])
    return submit(self, fn, *args)
_Ray.share, _Ray.submit = counting_share, watching_submit
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "puts": puts, "states": states}))
"""


def _drive(argv: list[str]) -> subprocess.CompletedProcess:
    """``mandril`` with ``argv`` in a fresh process (see above)."""
    return subprocess.run([sys.executable, "-m", "mandril.cli", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_two_nodes_give_the_records_of_a_local_run_and_take_each_prepared_state_once(cluster, local_run, tmp_path):
    out = tmp_path / "cluster"
    driver = subprocess.run([sys.executable, "-c", _COUNTING_DRIVER, json.dumps([*RUN, "--out", str(out), "--ray-address", cluster.address])],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, driver.stderr[-3000:]
    result = json.loads(driver.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, driver.stderr[-3000:]
    assert comparable(out) == comparable(local_run)
    suite = load_suite(SMOKE)
    preparations = preparations_of(units_of(suite))
    puts, states = result["puts"], result["states"]
    assert len(puts) == len(preparations) and all(kind == "ObjectRef" for kind, _ in puts)  # once each
    assert len(states) == sum(u.needs_preparation for u in units_of(suite))
    by_preparation: dict[str, set] = {}
    for preparation_id, kind, ref in states:  # every unit took its preparation's reference, not the state
        assert kind == "ObjectRef"
        by_preparation.setdefault(preparation_id, set()).add(ref)
    assert sorted(by_preparation) == sorted(p.id for p in preparations) and all(len(refs) == 1 for refs in by_preparation.values())
    assert {ref for refs in by_preparation.values() for ref in refs} == {ref for _, ref in puts}


def test_a_worker_node_killed_mid_run_loses_no_saved_cell_and_resume_completes_the_run(cluster, local_run, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "mandril.cli", *RUN, "--out", str(out), "--ray-address", cluster.address]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and driver.poll() is None and len(saved(out)) < 10:
            time.sleep(0.05)
        assert driver.poll() is None, "the run ended before the node could be killed"
        node = cluster.workers.pop()
        node.kill_raylet()  # the worker node is lost mid-run, with the jobs it was running
        cluster.stopped.append(node)
        before = saved(out)
        while time.time() < deadline and driver.poll() is None and len(saved(out)) < len(before) + 3:
            time.sleep(0.05)
        assert driver.poll() is None, "the run ended before the driver could be killed"
        during = saved(out)  # the run went on without the node: Ray reran its jobs on the head
        driver.send_signal(signal.SIGKILL)  # and then the driver is lost too
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
        err = driver.stderr.read().decode()
        driver.stderr.close()
    assert len(during) > len(before) and {name: during[name] for name in before} == before, err
    assert comparable(out) != comparable(local_run)  # it was interrupted
    cluster.add_worker()  # a replacement node, as the autoscaler would start
    cluster.wait_for(2)
    resumed = _drive([*RUN, "--out", str(out), "--ray-address", cluster.address, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert comparable(out) == comparable(local_run)
    after = saved(out)
    assert {name: after[name] for name in during} == during  # no saved cell was lost or rewritten
    assert not list(out.rglob(".*.tmp"))
