"""Memory estimates: how many bytes an allocation will take, checked against what the machine can hold.

The one place where sizes are estimated and refused. Env constructors (a task's model and
observations), :attr:`TabularModel.transition_matrix` (the dense tensor, only when it is built),
the planner (``(H, S, A)`` tables), :func:`mandril_envs.dataset.collect` and the
``mandril-envs demos generate`` command (the dataset arrays and the tasks), and
:meth:`DemoDataset.load <mandril_envs.dataset.DemoDataset.load>` (the arrays a file declares) all call
:func:`check_fits` before they allocate, so an absurd size is a ``ValueError`` naming the argument,
the estimate and the limit, not a hang or a ``MemoryError`` traceback.

The estimates count the arrays that are kept (8 bytes per float64/int64 entry, 32 bytes per number
of a task's parameters held as Python lists); short-lived temporaries are not counted, so an
estimate is a lower bound and a request just under the limit can still run out of memory.

The limit (:func:`memory_limit`) is the memory available now: the smallest of ``MemAvailable``
(``/proc/meminfo``) and the room left under a cgroup memory limit; where neither can be read, the
available physical pages (``sysconf``); failing that, 8 GiB. Set the environment variable
``MANDRIL_ENVS_MEMORY_LIMIT`` to a number of bytes to choose the limit yourself.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = [
    "MEMORY_LIMIT_ENV",
    "ModelShape",
    "check_fits",
    "dataset_nbytes",
    "dense_nbytes",
    "format_bytes",
    "memory_limit",
    "plan_nbytes",
    "tasks_nbytes",
]

#: The environment variable that sets the limit (bytes) instead of the measured available memory.
MEMORY_LIMIT_ENV = "MANDRIL_ENVS_MEMORY_LIMIT"
_FALLBACK_LIMIT = 8 * 1024**3
# Below this nothing is measured: any machine that runs Python holds it.
_ALWAYS_FITS = 64 * 1024**2
_ENTRY = 8  # bytes per float64 / int64 entry
_PYTHON_NUMBER = 32  # bytes per number held in a Python list (pointer + float object)
_TASK_OBJECT = 400  # bytes of one Task object with its dicts, params aside (measured: 570 bytes for a 5-arm bandit task, 160 of them its means)


def format_bytes(nbytes: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units up to EiB)."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.3g} EiB"


def _meminfo_available() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> Optional[int]:
    """Bytes left under the cgroup's memory limit (v2, then v1), or None if unlimited or unknown."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max":
                return None
            limit, usage = int(limit_text), int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # cgroup v1 writes a huge number for "no limit"
            return None
        return max(limit - usage, 0)
    return None


def _sysconf_available() -> Optional[int]:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_AVPHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit() -> tuple[int, str]:
    """``(bytes, where the number comes from)``: the memory an allocation may take now.

    Raises:
        ValueError: ``MANDRIL_ENVS_MEMORY_LIMIT`` is set but is not a positive number of bytes.
    """
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text is not None and text.strip():
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{MEMORY_LIMIT_ENV} must be a positive number of bytes, got {text!r}")
        return int(value), f"set by {MEMORY_LIMIT_ENV}"
    candidates = [(n, where) for n, where in ((_meminfo_available(), "MemAvailable in /proc/meminfo"), (_cgroup_room(), "room left under the cgroup memory limit")) if n is not None]
    if not candidates:
        available = _sysconf_available()
        candidates = [(available, "available physical pages")] if available else [(_FALLBACK_LIMIT, "a fixed 8 GiB: the available memory could not be read")]
    return min(candidates)


def check_fits(nbytes: int, what: str) -> int:
    """Return ``nbytes`` if it fits in :func:`memory_limit`, else raise before anything is allocated.

    Args:
        nbytes: the estimate.
        what: what would be allocated, naming the argument(s) and value(s) that drive it, e.g.
            ``"GridWorld size=10000: one task's model (S=100000000, A=9, K=1, F=20)"``.

    Raises:
        ValueError: ``"{what} would take about X, more than the Y this machine can hold (where Y comes from)"``.
    """
    nbytes = int(nbytes)
    if nbytes <= _ALWAYS_FITS and not os.environ.get(MEMORY_LIMIT_ENV, "").strip():
        return nbytes
    limit, source = memory_limit()
    if nbytes > limit:
        raise ValueError(f"{what} would take about {format_bytes(nbytes)}, more than the {format_bytes(limit)} this machine can hold ({source})")
    return nbytes


@dataclass(frozen=True)
class ModelShape:
    """What one task of a family keeps in memory, from its config alone (before anything is built).

    Attributes:
        n_states, n_actions, n_successors, n_features: ``S``, ``A``, ``K`` (successor width), ``F``.
        state_action_reward: the reward table is ``(S, A)`` rather than ``(S,)``.
        dense: the family builds the dense ``(S, A, S)`` transition tensor for every task (e.g. its
            parameters are one); a lazily built dense view is checked when it is asked for.
        param_numbers: how many numbers one task's parameters hold (kept as Python lists).
        observation_bytes: the observation space's bounds and one observation.
    """

    n_states: int
    n_actions: int
    n_successors: int
    n_features: int
    state_action_reward: bool = False
    dense: bool = False
    param_numbers: int = 0
    observation_bytes: int = 0

    @property
    def nbytes(self) -> int:
        """Successor indices and probabilities, reward, start distribution, features, the dense tensor
        if built, the task's parameters, and the observations."""
        s, a = self.n_states, self.n_actions
        arrays = 2 * s * a * self.n_successors + (s * a if self.state_action_reward else s) + s + s * self.n_features
        if self.dense:
            arrays += dense_nbytes(s, a) // _ENTRY
        return _ENTRY * arrays + _PYTHON_NUMBER * self.param_numbers + self.observation_bytes

    def describe(self) -> str:
        """``"S=64, A=9, K=1, F=20"``."""
        return f"S={self.n_states}, A={self.n_actions}, K={self.n_successors}, F={self.n_features}" + (", dense (S, A, S)" if self.dense else "")


def dense_nbytes(n_states: int, n_actions: int) -> int:
    """Bytes of a dense ``(S, A, S)`` float64 transition tensor."""
    return _ENTRY * n_states * n_actions * n_states


def plan_nbytes(horizon: int, n_states: int, n_actions: int) -> int:
    """Bytes a finite-horizon plan keeps: ``V (H, S)``, ``Q (H, S, A)``, ``pi (H, S, A)`` and one
    ``(H, S, A)`` temporary of the same size (the soft policy's exponent)."""
    return _ENTRY * horizon * n_states * (3 * n_actions + 1)


def dataset_nbytes(n_tasks: int, n_demos: int, horizon: int, param_numbers: int = 0) -> int:
    """Bytes of a dataset: ``states (N, M, H+1)``, ``actions (N, M, H)``, ``rewards (N, M, H)`` and
    ``N`` tasks of ``param_numbers`` numbers each."""
    return _ENTRY * n_tasks * n_demos * (3 * horizon + 1) + _PYTHON_NUMBER * n_tasks * param_numbers


def tasks_nbytes(n_tasks: int, param_numbers: int = 0) -> int:
    """Bytes of ``n_tasks`` :class:`~mandril_envs.tasks.Task` objects of ``param_numbers`` numbers each."""
    return n_tasks * (_TASK_OBJECT + _PYTHON_NUMBER * param_numbers)
