"""Running a suite: preparations and units on this process, a local process pool, or Ray.

The driver (this process) decides what is left (:class:`~mandril.bench.store.RunStore`), hands
preparations and units to workers as their inputs become ready (a unit waits for its method's
preparation; other units start at once; the queue keeps the suite's order), and writes every result itself, atomically, as it arrives.
Workers run the pure functions of :mod:`mandril.bench.work` with one torch thread each, so every
backend produces the same records.

On resume, a unit whose records file is not valid (empty, truncated, foreign: see
:meth:`~mandril.bench.store.RunStore.scan`) is redone, a preparation that failed is retried (with
the units that failed with it), and a prepared state that is damaged or of another preparation is
discarded and prepared again; each says so in one line. A pool worker exits when the driver dies
(even by SIGKILL), so a killed run leaves no process behind.
"""

from __future__ import annotations

import bisect
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from mandril.bench.cells import Unit, preparations_of, units_of
from mandril.bench.store import PREPARATION_FAILED, RunStore
from mandril.bench.suite import Suite
from mandril.bench.work import PackedState, run_preparation, run_unit

__all__ = ["run_suite", "check_backend", "RunSummary", "BACKENDS", "WorkerLostError"]

#: Where cells run: a local process pool or Ray tasks.
BACKENDS = ("local", "ray")


class WorkerLostError(RuntimeError):
    """A worker process died while it ran a job (killed, out of memory, or it could not import mandril)."""


@dataclass
class RunSummary:
    """What a run did: cells done before it and by it, cells of the whole run that failed (those done
    before a resume included), what it found wrong in the folder and redid (``notes``), its wall time."""

    cells: int = 0
    done_before: int = 0
    done_now: int = 0
    failed: int = 0
    failed_now: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Executor:
    """What :func:`run_suite` needs of a backend: ``submit`` a job, ``share`` a value many jobs take, ``shutdown``."""

    #: the errors of a job whose worker died (see :class:`WorkerLostError`)
    lost: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def share(self, value: Any) -> Any:
        """A value many jobs will take (a prepared state), as they should receive it: here the value itself."""
        return value


class _Inline(_Executor):
    """Runs each job when it is submitted, in this process (one worker, no pool: simplest to debug)."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self) -> None:
        pass


#: How often a pool worker checks that the driver still runs.
PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent: int) -> None:
    """Make this process exit as soon as ``parent`` (the driver) is gone, even if it was SIGKILLed.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (instant); everywhere: a daemon thread that polls
    ``os.getppid()`` (a dead parent's children are handed to another process)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="mandril-parent-watchdog", daemon=True).start()


def _worker_init(threads: int, parent: int) -> None:
    import torch

    _exit_with_parent(parent)
    torch.set_num_threads(threads)


class _Pool(_Executor):
    """A local process pool (spawned processes, one torch thread each)."""

    def __init__(self, workers: int, threads: int) -> None:
        import multiprocessing

        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(threads, os.getpid()))

    def share(self, value: Any) -> Any:
        """A prepared state as bytes (:class:`~mandril.bench.work.PackedState`), not tensors: a worker killed while
        receiving tensors' shared memory would make this process print tracebacks."""
        return None if value is None else PackedState.pack(value)

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


#: Ray's errors that mean a job's worker or node was lost, not that the job failed (those are recorded)
_RAY_LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OutOfMemoryError")


@contextmanager
def shipped_code() -> Iterator[dict]:
    """A Ray ``runtime_env`` that ships this process's ``mandril`` and ``mandril_envs`` to a cluster's workers.

    Its ``working_dir`` is a copy of the two packages (no caches), uploaded by ``ray.init`` (Ray keeps
    it by content hash) and unpacked on each node as the workers' directory, first on their path. Every
    node needs the dependencies installed (torch, numpy, gymnasium, imitation: see docs/cluster.md);
    the project's own code comes from the driver, so a cluster runs exactly the driver's checkout, never
    an older copy installed on a node. (A ``working_dir`` also stops Ray from putting the driver's
    current directory first on the workers' path, where a node's copy of a checkout would win.)
    """
    import mandril
    import mandril_envs

    with tempfile.TemporaryDirectory(prefix="mandril-code-") as staging:
        for package in (mandril, mandril_envs):
            source = Path(package.__path__[0])
            shutil.copytree(source, Path(staging) / source.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        yield {"working_dir": staging}


class _Ray(_Executor):
    """Ray tasks on a local Ray instance, or on a cluster at ``address``; results come back to the driver.

    On a cluster the project's code travels with the jobs (:func:`shipped_code`); each prepared
    state is put in the object store once (:meth:`share`) and the units that need it receive its
    reference. A job whose node dies is rerun by Ray on another node (up to ``max_retries`` times: the
    jobs are pure functions and only the driver writes); when Ray gives up, the run stops with
    :class:`WorkerLostError` and the saved cells stay saved.
    """

    max_retries = 3

    def __init__(self, workers: int, address: Optional[str]) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--backend ray needs Ray: pip install 'mandril[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():  # (else the caller's session as it is, with its runtime_env)
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if address:
                with shipped_code() as runtime_env:
                    ray.init(address=address, runtime_env=runtime_env, **options)
            else:
                ray.init(num_cpus=workers, **options)
            self._owns = True
        else:
            self._owns = False
        self.lost = (BrokenProcessPool, *(getattr(ray.exceptions, name) for name in _RAY_LOST))
        self.remote: dict[Callable, Any] = {}

    def share(self, value: Any) -> Any:
        """``value`` in the object store (once), for jobs to take by reference; ``None`` stays ``None``."""
        return None if value is None else self.ray.put(value)

    def submit(self, fn: Callable, *args: Any) -> Future:
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(fn)
        return self.remote[fn].remote(*args).future()  # the work functions set their own torch threads

    def shutdown(self) -> None:
        if self._owns:
            self.ray.shutdown()


def _check_device(device: str) -> None:
    """Refuse a device torch cannot use here, before any work."""
    from mandril.methods import make

    make("zero_reward").to(device)


def check_backend(backend: str, address: Optional[str]) -> None:
    """Refuse an unknown backend, an address without Ray, or a Ray address nothing answers at, before any work
    (``ray.init`` would retry an unreachable address for minutes)."""
    import socket

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if address and backend != "ray":
        raise ValueError(f"--ray-address needs --backend ray, got backend {backend!r} (the local backend runs no Ray cluster)")
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address must be HOST:PORT (the head node's port, 6379 unless set), ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        raise ValueError(f"--ray-address {address}: nothing answers there ({error.strerror or error}); is the head node up (ray start --head)?") from None


def _executor(backend: str, workers: int, threads: int, address: Optional[str]) -> Any:
    check_backend(backend, address)
    if backend == "ray":
        return _Ray(workers, address)
    return _Inline() if workers == 1 else _Pool(workers, threads)


def _requeue(ready: list[Unit], units: Sequence[Unit], position: dict[str, int]) -> None:
    """Put ``units`` (whose preparation just finished) into the queue ``ready`` at their place in the suite's
    order (``position``: unit id -> index), so that a prepared method's units run beside the others' of the
    same family, split and n instead of after every other unit: a partial run has every method's cells early."""
    for unit in units:
        bisect.insort(ready, unit, key=lambda u: position[u.id])


def run_suite(
    suite: Suite,
    out: Any,
    *,
    resume: bool = False,
    workers: int = 1,
    backend: str = "local",
    ray_address: Optional[str] = None,
    progress: bool = True,
    prepared_dir: Any = None,
    device: Optional[str] = None,
) -> RunSummary:
    """Run every cell of ``suite`` not yet done in ``out`` (see the module docstring).

    Args:
        suite: the suite.
        out: its output directory (refused if it holds another suite, or this one without ``resume``).
        resume: continue the run in ``out``.
        workers: worker processes (1: in this process).
        backend: ``"local"`` or ``"ray"``.
        ray_address: a Ray cluster to join (default: start a local Ray instance).
        progress: show a progress bar over cells, with the method and an ETA.
        prepared_dir: where prepared methods are kept (default ``out/prepared``; a tuning sweep shares one).
        device: where the methods' torch work runs (``"cpu"``, ``"cuda"``; default torch's default, the CPU).
            Results on a GPU can differ from the CPU's in the last bits; a suite's records say nothing
            of the device, so keep one device per output directory.

    Returns:
        A :class:`RunSummary`; failed cells are recorded, not raised; ``summary.failed`` counts every
        failed cell of the run, those of earlier runs in ``out`` included.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
        raise ValueError(f"workers must be an int between 1 and 1024, got {workers!r}")
    if device is not None:
        _check_device(device)
    check_backend(backend, ray_address)  # before the folder is claimed
    store = RunStore(out, prepared_dir)
    units = units_of(suite)
    preparations = preparations_of(units)
    store.open(suite, resume)
    try:
        return _run(suite, store, units, preparations, workers, backend, ray_address, progress, device)
    finally:
        store.close()


def _run(suite: Suite, store: RunStore, units: list[Unit], preparations: list, workers: int, backend: str, ray_address: Optional[str],
         progress: bool, device: Optional[str]) -> RunSummary:
    """:func:`run_suite` once the directory is claimed."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    summary = RunSummary(cells=sum(u.n_tasks for u in units))
    notes = summary.notes
    scan = store.scan(units)
    by_id = {u.id: u for u in units}
    notes += [f"redoing unit {unit_id}: {store.unit_path(by_id[unit_id])}: {why}" for unit_id, why in scan.refused.items()]
    notes += [f"ignoring {store.root / 'records' / name}: {why}" for name, why in scan.ignored]
    states: dict[str, tuple[Optional[dict], Optional[str]]] = {}
    retried: set[str] = set()
    for preparation in preparations:  # a failed preparation is retried, with the units that failed with it
        known = store.read_preparation(preparation, load=False)
        if known.status == "failed":
            notes.append(f"retrying the preparation {preparation.id} (it failed before: {known.error[:200]})")
            store.discard_preparation(preparation)
            retried.add(preparation.id)
    left = [u for u in units if u.id not in scan.done
            or (u.needs_preparation and u.preparation.id in retried and all(str(r.get("error") or "").startswith(PREPARATION_FAILED) for r in scan.done[u.id]))]
    summary.done_before = summary.cells - sum(u.n_tasks for u in left)
    blocked = [path for path in [store.unit_path(u) for u in left] + [f(p) for p in preparations_of(left) for f in (store.prepared_path, store.training_checkpoint)]
               if path.is_dir() and not path.is_symlink()]
    if blocked:  # before any work: its result could not be written
        raise ValueError(f"{blocked[0]} is a folder where the harness writes a file" + (f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else "")
                         + ": move it away, then run again with --resume")
    for preparation in preparations_of(left):  # what the units left need: whole, and of this preparation?
        known = store.read_preparation(preparation)
        if known.status == "refused":
            notes.append(f"preparing {preparation.id} again: {known.reason}")
            store.discard_preparation(preparation)
        elif known.status == "done":
            states[preparation.id] = (known.state, None)
    waiting: dict[str, list[Unit]] = {}
    ready: list[Unit] = []
    position = {unit.id: index for index, unit in enumerate(left)}
    for unit in left:
        if unit.needs_preparation and unit.preparation.id not in states:
            waiting.setdefault(unit.preparation.id, []).append(unit)
        else:
            ready.append(unit)
    to_prepare = [p for p in preparations if p.id in waiting]
    bar = tqdm(total=summary.cells, initial=summary.done_before, desc=f"bench {suite.name}", unit="cell", disable=not progress, dynamic_ncols=True)

    def say(line: str) -> None:
        if progress:
            bar.write(line)
        else:
            print(line, file=sys.stderr)

    for line in notes:
        say(line)
    executor = _executor(backend, workers, suite.threads, ray_address)
    suite_data = suite.to_dict()
    running: dict[Future, tuple[str, Any]] = {}
    shared: dict[str, Any] = {}

    def submit_unit(unit: Unit) -> None:
        state, error = states.get(unit.preparation.id, (None, None)) if unit.needs_preparation else (None, None)
        if state is not None:
            if unit.preparation.id not in shared:  # one copy per preparation (Ray: in the object store), not one per unit
                shared[unit.preparation.id] = executor.share(state)
            state = shared[unit.preparation.id]
        running[executor.submit(run_unit, suite_data, unit, state, error, device)] = ("unit", unit)

    def collect(future: Future) -> None:
        kind, job = running.pop(future)
        try:
            result = future.result()
        except executor.lost as error:
            what = f"preparing {job.method} on {job.family}" if kind == "preparation" else f"{job.method} on {job.family}/{job.split}, n={job.n_demos}"
            cause = " ".join(str(error).split())[:300]
            raise WorkerLostError(
                f"a worker process died while running {what} (killed, out of memory, or the code changed under it: "
                f"{type(error).__name__}{': ' + cause if cause else ''}); "
                f"{summary.done_before + summary.done_now} of {summary.cells} cells are saved: rerun with --resume"
            ) from None
        if kind == "preparation":
            for line in result.get("notes", []):
                notes.append(line)
                say(line)
            store.write_preparation(job, result)
            states[job.id] = (result["state"], result["error"])
            shared.pop(job.id, None)
            message = f"failed: {result['error']}" if result["error"] else f"done in {result['seconds']:.0f} s"
            if progress:
                bar.write(f"prepared {job.method} on {job.family} (seed {job.seed}): {message}")
            _requeue(ready, waiting.pop(job.id, []), position)
        else:
            store.write_unit(job, result)
            failures = [r for r in result if r.get("error")]
            summary.done_now += len(result)
            summary.failed_now += len(failures)
            bar.update(len(result))
            bar.set_postfix_str(f"{job.method} on {job.family}/{job.split}, n={job.n_demos}", refresh=False)

    capacity = max(2 * workers, 2)
    try:
        inline = isinstance(executor, _Inline)
        for preparation in to_prepare:  # the long jobs first
            # a training checkpoint lives on this machine's disk: not for workers of a remote cluster
            checkpoint = None if ray_address else str(store.training_checkpoint(preparation))
            if inline and progress:
                bar.write(f"preparing {preparation.method} on {preparation.family} (seed {preparation.seed})...")
            running[executor.submit(run_preparation, suite_data, preparation, checkpoint, False, device)] = ("preparation", preparation)
            if inline:
                collect(next(iter(running)))
        while ready or running:
            while ready and len(running) < capacity:
                submit_unit(ready.pop(0))
                if inline:
                    collect(next(iter(running)))
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    collect(future)
    finally:
        bar.close()
        executor.shutdown()
    summary.seconds = time.perf_counter() - start
    final = store.scan(units)  # every failed cell of the run, those of earlier runs included
    summary.failed = len(final.failed)
    summary.failures = [f"{r['unit']} task {r['task']}: {r['error']}" for r in final.failed]
    return summary
