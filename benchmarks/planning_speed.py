"""Speed of mandril's torch planning kernels against imitation's MCE IRL functions.

Times, in one process and on the same models and rewards, imitation's ``mce_partition_fh`` +
``mce_occupancy_measures`` (the policy is passed on, so the backup runs once) against
:func:`mandril.planning.expected_visitation` (soft value iteration + expected visitation):

  (a) one 32x32 GridWorld task, horizon 64;
  (b) a meta-batch of 32 GridWorld 16x16 tasks, horizon 32 (imitation looped over the tasks,
      ours one batched call);
  (c) forward + backward of the MaxEnt loss for (b): ours ``maxent_nll`` then autograd's gradient
      with respect to the reward; imitation the same two functions plus ``Dcum - demo_om``, which
      is how its ``MCEIRL`` gets the gradient with respect to the reward.

Each figure is the median of several runs (``--repeats``); the two sides are run alternately so
that load from other processes hits both. Results are checked equal to 1e-10 (imitation's ``D`` has
``H + 1`` rows; its first ``H`` are ours). Then the scaling with the grid size (8, 16, 32, 64; horizon
2N) and the peak memory of one call (measured in a fresh subprocess per case: the rise of the peak
resident set size over the resident size before the call, including building the dynamics tensors
each side needs: imitation's dense ``(S, A, S)`` matrix, our sparse batch).

    python benchmarks/planning_speed.py            # everything (a few minutes on 2 cores)
    python benchmarks/planning_speed.py --quick    # fewer repeats, grids 8-32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Optional

import gymnasium as gym
import numpy as np
import torch

import mandril_envs  # noqa: F401  (registers the ids)
from mandril.planning import TaskBatch, expected_visitation, maxent_nll, state_visitation, soft_value_iteration
from mandril_envs.model import TabularModel

TOLERANCE = 1e-10


def gridworld_models(size: int, horizon: int, n_tasks: int, seed: int = 0, slip: float = 0.0) -> list[TabularModel]:
    """``n_tasks`` training tasks of a ``size x size`` GridWorld with the given horizon (and slip)."""
    env = gym.make("mandril_envs/GridWorld-v0", size=size, horizon=horizon, slip=slip).unwrapped
    models = []
    for task in env.sample_tasks(n_tasks, "train", seed=seed):
        env.set_task(task)
        models.append(env.model)
    return models


def imitation_functions() -> tuple[Callable, Callable]:
    from imitation.algorithms.mce_irl import mce_occupancy_measures, mce_partition_fh

    return mce_partition_fh, mce_occupancy_measures


def imitation_visitation(model: TabularModel, reward: np.ndarray) -> np.ndarray:
    """imitation's ``D`` ``(H + 1, S)`` for ``reward`` (backup once, policy passed on)."""
    partition, occupancy = imitation_functions()
    _, _, policy = partition(model, reward=reward)
    visitation, _ = occupancy(model, reward=reward, pi=policy)
    return visitation


def imitation_gradient(model: TabularModel, reward: np.ndarray, demo_om: np.ndarray) -> np.ndarray:
    """What imitation's MCEIRL multiplies into its reward net: ``Dcum - demo_om``."""
    partition, occupancy = imitation_functions()
    _, _, policy = partition(model, reward=reward)
    _, cumulative = occupancy(model, reward=reward, pi=policy)
    return cumulative - demo_om


def median_times(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (s) of each function, run alternately after one warm-up call each."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def check_equal(models: list[TabularModel], batch: TaskBatch, rewards: torch.Tensor) -> float:
    """Max abs difference between our per-step visitation and imitation's first H rows (and V, pi)."""
    partition, occupancy = imitation_functions()
    plan = soft_value_iteration(batch, rewards)
    ours_d = state_visitation(batch, plan.policy)
    worst = 0.0
    for b, model in enumerate(models):
        reward = rewards[b].numpy()
        values, _, policy = partition(model, reward=reward)
        visitation, _ = occupancy(model, reward=reward, pi=policy)
        worst = max(
            worst,
            float(np.abs(plan.values[b].numpy() - values).max()),
            float(np.abs(plan.policy[b].numpy() - policy).max()),
            float(np.abs(ours_d[b].numpy() - visitation[: model.horizon]).max()),
        )
    return worst


def case_forward(name: str, models: list[TabularModel], repeats: int) -> dict:
    """(a) / (b): soft VI + visitation, ours batched against imitation looped."""
    batch = TaskBatch.from_models(models)
    rewards = torch.as_tensor(np.stack([m.reward_matrix for m in models]))
    for model in models:
        model.transition_matrix  # imitation's dense matrix, built (and cached) outside the timing
    mu = expected_visitation(batch, rewards)
    worst = check_equal(models, batch, rewards)
    reference = np.stack([imitation_visitation(m, m.reward_matrix)[:-1].sum(0) for m in models])
    worst = max(worst, float(np.abs(mu.numpy() - reference).max()))

    def ours() -> None:
        with torch.no_grad():
            expected_visitation(batch, rewards)

    def theirs() -> None:
        for model in models:
            imitation_visitation(model, model.reward_matrix)

    times = median_times({"imitation": theirs, "mandril": ours}, repeats)
    return {"case": name, "tasks": len(models), "S": batch.n_states, "H": batch.horizon, **times,
            "ratio": times["imitation"] / times["mandril"], "max_abs_diff": worst}


def case_gradient(name: str, models: list[TabularModel], repeats: int, rng: np.random.Generator) -> dict:
    """(c): forward + backward of the MaxEnt loss against imitation's MCEIRL gradient."""
    batch = TaskBatch.from_models(models)
    rewards = torch.as_tensor(np.stack([m.reward_matrix for m in models]))
    horizon, n_states = batch.horizon, batch.n_states
    # a demo visitation: a random distribution per step, H rows (ours) and the same plus a last row (imitation)
    demo_rows = rng.dirichlet(np.ones(n_states), size=(len(models), horizon + 1))
    mu_demo = torch.as_tensor(demo_rows[:, :horizon].sum(1))
    demo_om = demo_rows.sum(1)

    def ours(method: str = "analytic") -> torch.Tensor:
        reward = rewards.clone().requires_grad_(True)
        loss = maxent_nll(batch, reward, mu_demo, method=method).sum()
        (gradient,) = torch.autograd.grad(loss, reward)
        return gradient

    def theirs() -> np.ndarray:
        return np.stack([imitation_gradient(m, m.reward_matrix, demo_om[b]) for b, m in enumerate(models)])

    def hvp() -> torch.Tensor:
        reward = rewards.clone().requires_grad_(True)
        loss = maxent_nll(batch, reward, mu_demo).sum()
        (gradient,) = torch.autograd.grad(loss, reward, create_graph=True)
        (product,) = torch.autograd.grad((gradient * mu_demo).sum(), reward)
        return product

    # imitation's gradient counts s_H: remove its last row (D[H] - demo row H) to compare with ours
    last_rows = np.stack([imitation_visitation(m, m.reward_matrix)[-1] for m in models]) - demo_rows[:, -1]
    worst = float(np.abs(ours().numpy() - (theirs() - last_rows)).max())
    worst = max(worst, float(np.abs(ours("autograd").numpy() - ours().numpy()).max()))
    times = median_times(
        {"imitation": theirs, "mandril": ours, "mandril_autograd": lambda: ours("autograd"), "mandril_hvp": hvp}, repeats
    )
    return {"case": name, "tasks": len(models), "S": n_states, "H": horizon, **times,
            "ratio": times["imitation"] / times["mandril"], "max_abs_diff": worst}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_probe(side: str, size: int) -> int:
    """Peak RSS rise (bytes) of one call, building the side's dynamics tensors included (run in a fresh process).

    Resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) just before the call and reads
    ``VmHWM`` after it, so imports and set-up do not count.
    """
    (model,) = gridworld_models(size, 2 * size, 1)
    reward = model.reward_matrix
    rewards = torch.as_tensor(reward[None])
    if side == "imitation":
        imitation_functions()
    else:  # warm torch up on a tiny problem
        expected_visitation(TaskBatch.from_models(gridworld_models(4, 3, 1)), torch.zeros(1, 16, dtype=torch.float64))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    if side == "imitation":
        model.transition_matrix
        imitation_visitation(model, reward)
    else:
        with torch.no_grad():
            expected_visitation(TaskBatch.from_models([model]), rewards)
    return max(0, _status_kib("VmHWM") - before) * 1024


def memory(side: str, size: int) -> Optional[int]:
    command = [sys.executable, __file__, "--memory-probe", side, str(size), "--threads", str(torch.get_num_threads())]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"  memory probe {side} {size}x{size} failed: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return int(result.stdout.strip().splitlines()[-1])


def case_scaling(size: int, repeats: int) -> dict:
    models = gridworld_models(size, 2 * size, 1)
    row = case_forward(f"{size}x{size}", models, repeats)
    row["mem_imitation"] = memory("imitation", size)
    row["mem_mandril"] = memory("mandril", size)
    return row


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"numpy {np.__version__}, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")


def _limit_blas_threads(threads: int) -> object:
    """Limit numpy's BLAS threads too (imitation's matrix products), if threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Cases: (a) 32x32, H=64, 1 task; (b) 16x16, H=32, 32 tasks; (c) forward+backward of (b).")
    parser.add_argument("--quick", action="store_true", help="3 repeats and grids 8-32 (default: 9 repeats, grids 8-64)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per timing (median reported)")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="grid sizes of the scaling table")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a small shared machine more threads wait on each other)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--memory-probe", nargs=2, metavar=("SIDE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    limits = _limit_blas_threads(args.threads)  # noqa: F841  (keeps the limit for the whole run)
    if args.memory_probe:
        print(memory_probe(args.memory_probe[0], int(args.memory_probe[1])))
        return 0
    repeats = args.repeats or (3 if args.quick else 9)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    sizes = args.sizes or ([8, 16, 32] if args.quick else [8, 16, 32, 64])
    print(f"machine: {machine()}")
    print(f"median of {repeats} runs; times in ms; ratio = imitation / mandril\n")
    rng = np.random.default_rng(0)
    results = {"machine": machine(), "repeats": repeats, "cases": [], "scaling": []}
    batch_models = gridworld_models(16, 32, 32)
    cases = [
        case_forward("(a) 1 task 32x32 H=64", gridworld_models(32, 64, 1), repeats),
        case_forward("(b) 32 tasks 16x16 H=32", batch_models, repeats),
        case_gradient("(c) fwd+bwd of (b)", batch_models, repeats, rng),
        # not a goal: the general (stochastic) path, 9 successors per (s, a)
        case_forward("(b) with slip 0.1", gridworld_models(16, 32, 32, slip=0.1), repeats),
    ]
    print(f"{'case':28s} {'imitation':>10s} {'mandril':>9s} {'ratio':>7s} {'max|diff|':>10s}")
    for row in cases:
        print(f"{row['case']:28s} {row['imitation'] * 1e3:10.2f} {row['mandril'] * 1e3:9.2f} {row['ratio']:6.1f}x {row['max_abs_diff']:10.1e}")
        results["cases"].append(row)
    gradient = cases[2]
    print(f"  (c) with method='autograd': {gradient['mandril_autograd'] * 1e3:.2f} ms; "
          f"Hessian-vector product (forward, backward, double backward): {gradient['mandril_hvp'] * 1e3:.2f} ms")
    print("\nscaling: one GridWorld task, horizon 2N; peak memory of one call (MiB)")
    print(f"{'grid':>6s} {'S':>5s} {'H':>4s} {'imitation':>10s} {'mandril':>9s} {'ratio':>7s} {'mem imit':>9s} {'mem ours':>9s} {'max|diff|':>10s}")
    for size in sizes:
        row = case_scaling(size, 1 if size >= 64 else repeats)
        results["scaling"].append(row)
        mem = lambda v: "n/a" if v is None else f"{v / 2**20:.1f}"  # noqa: E731
        print(f"{row['case']:>6s} {row['S']:5d} {row['H']:4d} {row['imitation'] * 1e3:10.2f} {row['mandril'] * 1e3:9.2f} "
              f"{row['ratio']:6.1f}x {mem(row['mem_imitation']):>9s} {mem(row['mem_mandril']):>9s} {row['max_abs_diff']:10.1e}")
    failed = [row["case"] for row in results["cases"] + results["scaling"] if not row["max_abs_diff"] <= TOLERANCE]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if failed:
        print(f"\nFAIL: results differ by more than {TOLERANCE} in {failed}")
        return 1
    print(f"\nall results equal to {TOLERANCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
