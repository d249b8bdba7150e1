"""Information curve: how much do n demonstrations of a held-out task reveal about its reward?

For each family (registered id), for each of ``--tasks`` held-out tasks and n = 1, 2, 4, ..., 32
soft-expert demos of it (nested: the first n of one seeded set of 32), the reward is fitted by
converged, start-conditioned MaxEnt IRL and scored by :func:`mandril.eval.score` against the
task's true model (EVD and normalized EVD: 0 expert, 1 uniform policy). Estimators:

* ``tabular``: one reward per state, MaxEnt with a small L2 (``--l2``); no structure, no prior
  (the methods registry's ``maxent_tabular``, run to a gradient tolerance: :func:`fit_reward`).
* ``linear``: a linear reward on the task's ``features`` input, MaxEnt with the same L2
  (``maxent_linear``).
* ``posterior``: a structure-aware estimator: the mode of the exact Bayesian posterior over the
  task's intent given the n demos' actions under the soft expert (``prod_t pi(a_t | s_t, t)``; on
  deterministic grids this is the start-conditioned MaxEnt likelihood, on stochastic dynamics
  MaxEnt's ``log Z - <mu_D, r>`` is only a surrogate of it). For ``GridWorld-v0``: which of the
  sprites is the goal (uniform prior over them); for families with a ``linear_intent()``
  (``GridWorld-Intent-v0``, ``TabularMDP-Linear-v0``): the Gaussian prior around the shared mean.
  It knows everything the family shares and lacks only the task's own draw: a method that learns
  the prior from training tasks should not expect to beat it (it is a mode, not the Bayes-optimal
  decision for EVD, so it is a reference, not a strict bound).
* ``prior``: the same structure with no demo (the prior mean reward), shown at n = 0.
* ``nearest_sprite`` (``GridWorld-v0``, n = 1): issue 10's rule: the goal is the sprite nearest
  to where the first demo ends.

"Start-conditioned": the likelihood's initial-state distribution is the demos' own empirical
start distribution (the registry's ``likelihood="start"``, as every MaxEnt-family method); EVD is scored from
the task's real one.

    python benchmarks/information_curve.py                       # the three families, 24 tasks
    python benchmarks/information_curve.py --env mandril_envs/GridWorld-Intent-v0 --tasks 8 \\
        --env-kwargs '{"goal_spread": 2.0}' --out /tmp/curve        # explore a setting
    python benchmarks/information_curve.py --help

Writes ``<out>/information_curve.csv`` (one row per env x estimator x n x task), ``.md`` (the
summary table) and ``.png`` (the curves), each atomically. Torch runs single-threaded.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import mandril
import mandril_envs
from mandril.core.io import atomic_write_bytes, atomic_write_text, write_csv
from mandril.eval import score, summarize
from mandril.planning import TaskBatch
from mandril.planning import soft_value_iteration as soft_value_iteration_torch
from mandril_envs.demos import generate
from mandril_envs.envs.intent import LinearIntent
from mandril_envs.model import TabularModel
from mandril_envs.planning import soft_value_iteration

DEFAULT_ENVS = ("mandril_envs/GridWorld-v0", "mandril_envs/GridWorld-Intent-v0", "mandril_envs/TabularMDP-Linear-v0")
FIT_KINDS = ("tabular", "linear")
ESTIMATORS = ("tabular", "linear", "posterior", "prior", "nearest_sprite")
LABELS = {
    "tabular": "MaxEnt, tabular",
    "linear": "MaxEnt, linear on features",
    "posterior": "posterior mode (knows the prior)",
    "prior": "prior mean (no demo)",
    "nearest_sprite": "nearest sprite to demo end",
}
#: MaxEnt fits (the registry's L-BFGS) stop when the gradient norm of the registry's per-step objective is at most this.
FIT_GRAD_TOL = 1e-5
FIT_MAX_STEPS = 3000
#: The posterior mode (torch L-BFGS, strong Wolfe) stops when the gradient norm of its objective is at most this.
GRAD_TOL = 1e-6
MAX_OUTER_STEPS = 60  # outer steps of up to 50 L-BFGS iterations each


@dataclass(frozen=True)
class Fit:
    """A fitted reward ``(S,)`` and how the fit ended."""

    reward: np.ndarray
    grad_norm: float
    converged: bool


def _lbfgs(params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.LBFGS(
        params, lr=1.0, max_iter=50, history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14
    )


def fit_reward(model: TabularModel, inputs: np.ndarray, states: np.ndarray, actions: np.ndarray, kind: str, l2: float = 0.01) -> Fit:
    """Converged, start-conditioned MaxEnt IRL of one task's demos (the one place the curve fits
    rewards): the methods registry's ``maxent_tabular`` / ``maxent_linear``.

    Args:
        model: the task's dynamics (the likelihood starts from the demos' own first states).
        inputs: the task's ``reward_input("features")`` ``(S, F)``.
        states: ``(M, H+1)`` demo states; ``actions``: ``(M, H)``.
        kind: ``"tabular"`` (one reward per state) or ``"linear"`` (on ``inputs``).
        l2: weight of ``l2 / 2 ||params||^2`` next to the negative log-likelihood of one demo (the
            registry's objective is the NLL per step, so it gets ``l2 / H``).

    The fit stops at a gradient norm of :data:`FIT_GRAD_TOL` of the registry's objective (the
    registry's default); the returned ``grad_norm`` is in those units.
    """
    if kind not in FIT_KINDS:
        raise ValueError(f"kind must be one of {list(FIT_KINDS)}, got {kind!r}")
    horizon = model.horizon
    method = mandril.make(f"maxent_{kind}", likelihood="start", l2=l2 / horizon, grad_tol=FIT_GRAD_TOL, max_steps=FIT_MAX_STEPS)
    output = method.fit(model, inputs, states, actions)
    return Fit(output.reward, float(output.info["grad_norm"]), bool(output.info["converged"]))


def _action_nll(policy: np.ndarray, states: np.ndarray, actions: np.ndarray) -> float:
    """``-sum log pi[t, s_t, a_t]`` over demos ``states (M, H+1)``, ``actions (M, H)``, ``policy (H, S, A)``."""
    steps = np.arange(actions.shape[1])
    return float(-np.log(np.maximum(policy[steps[None], states[:, :-1], actions], 1e-300)).sum())


def _intent_map(model: TabularModel, intent: LinearIntent, states: np.ndarray, actions: np.ndarray) -> Fit:
    """Posterior mode of ``params = mean + std * z``, ``z ~ N(0, I)``, given the demos' actions under the soft expert.

    Minimises ``(-sum_demos sum_t log pi_r(a_t | s_t, t) + |z|^2 / 2) / n`` (``r = basis @ params``)
    with L-BFGS until the gradient norm is at most :data:`GRAD_TOL`.
    """
    batch = TaskBatch.from_models([model])
    scaled = torch.as_tensor(intent.basis * intent.std)
    offset = torch.as_tensor(intent.prior_reward)
    z = torch.zeros(scaled.shape[1], dtype=torch.float64, requires_grad=True)
    n = len(states)
    steps = torch.arange(actions.shape[1])[None]
    s_t, a_t = torch.as_tensor(states[:, :-1]), torch.as_tensor(actions)
    optimizer = _lbfgs([z])

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        plan = soft_value_iteration_torch(batch, (scaled @ z + offset)[None])
        log_pi = plan.q_values[0][steps, s_t, a_t] - plan.values[0][steps, s_t]
        loss = (-log_pi.sum() + 0.5 * (z * z).sum()) / n
        loss.backward()
        return loss

    norm = math.inf
    for _ in range(MAX_OUTER_STEPS):
        closure()
        norm = float(z.grad.norm())
        if norm <= GRAD_TOL:
            break
        optimizer.step(closure)
    reward = (scaled @ z + offset).detach().numpy().copy()
    return Fit(reward, norm, norm <= GRAD_TOL)


def posterior_mode(base: mandril_envs.TabularTaskEnv, model: TabularModel, states: np.ndarray, actions: np.ndarray) -> Optional[Fit]:
    """The structure-aware estimator (module docstring), or ``None`` where the family has no written prior.

    The likelihood is the exact one of the soft expert's actions (``prod_t pi(a_t | s_t, t)``); on
    deterministic grids it equals the start-conditioned MaxEnt likelihood, on stochastic dynamics
    (TabularMDP) MaxEnt's ``log Z - <mu_D, r>`` is only a surrogate of it.
    """
    if base.family == "GridWorld":
        hypotheses = _gridworld_hypotheses(base)
        nll = [_action_nll(soft_value_iteration(model, r).policy, states, actions) for r in hypotheses]
        return Fit(hypotheses[int(np.argmin(nll))], 0.0, True)
    intent = _linear_intent(base)
    return None if intent is None else _intent_map(model, intent, states, actions)


def prior_reward(base: mandril_envs.TabularTaskEnv) -> Optional[np.ndarray]:
    """The structure-aware reward with no demo: the prior mean reward (``None`` without a written prior)."""
    if base.family == "GridWorld":
        return np.mean(_gridworld_hypotheses(base), axis=0)
    intent = _linear_intent(base)
    return None if intent is None else intent.prior_reward


def nearest_sprite_reward(base: mandril_envs.TabularTaskEnv, states: np.ndarray) -> np.ndarray:
    """GridWorld-v0: the reward whose goal is the sprite nearest (Chebyshev) to the first demo's last state."""
    size = base.config["size"]
    params = base.task.params
    sprites = [params["goal"]] + params["obstacles"]
    row, col = divmod(int(states[0, -1]), size)
    nearest = int(np.argmin([max(abs(s["cell"][0] - row), abs(s["cell"][1] - col)) for s in sprites]))
    return _gridworld_hypotheses(base)[nearest]


def _linear_intent(base: mandril_envs.TabularTaskEnv) -> Optional[LinearIntent]:
    method = getattr(base, "linear_intent", None)
    if method is None:
        return None
    try:
        return method()
    except ValueError:  # e.g. TabularMDP with state-action rewards
        return None


def _gridworld_hypotheses(base: mandril_envs.TabularTaskEnv) -> list[np.ndarray]:
    """GridWorld-v0: the reward ``(S,)`` with each of the task's sprites as the goal (the others obstacles).

    Built by the family's own model builder, without ``set_task``'s checks: a swapped task may put
    the goal next to an obstacle or in the other split's sprite combinations, which no drawn task does.
    """
    params = base.task.params
    sprites = [params["goal"]] + params["obstacles"]
    rewards = []
    for k, goal in enumerate(sprites):
        swapped = dict(params, goal=goal, obstacles=[s for i, s in enumerate(sprites) if i != k])
        rewards.append(np.array(base._build_model(swapped).reward_matrix))
    return rewards


def _demo_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def run_env(env_id: str, env_kwargs: dict, args: argparse.Namespace, bar) -> list[dict]:
    """Every estimator on ``args.tasks`` held-out tasks of ``env_id``: one row per estimator x n x task."""
    env = gym.make(env_id, **env_kwargs)
    base = env.unwrapped
    rows: list[dict] = []
    n_max = max(args.n)
    for task in base.sample_tasks(args.tasks, args.split, seed=args.task_seed):
        base.set_task(task)
        model = base.model
        demos = generate(env, n_max, policy="soft", seed=_demo_seed(args.demo_seed, task.index))
        all_states = np.stack([d.states for d in demos])
        all_actions = np.stack([d.actions for d in demos])
        features = base.reward_input("features")

        def record(estimator: str, n: int, fit: Fit, seconds: float) -> None:
            scores = score(model, fit.reward)
            rows.append(
                {
                    "env_id": env_id,
                    "env_kwargs": json.dumps(env_kwargs, sort_keys=True),
                    "split": args.split,
                    "task": task.index,
                    "estimator": estimator,
                    "n": n,
                    "evd": scores.evd,
                    "normalized_evd": scores.normalized_evd,
                    "optimal_return": scores.optimal_return,
                    "random_return": scores.random_return,
                    "grad_norm": fit.grad_norm,
                    "converged": fit.converged,
                    "seconds": seconds,
                }
            )

        prior = prior_reward(base) if "prior" in args.estimators else None
        if prior is not None:
            record("prior", 0, Fit(prior, 0.0, True), 0.0)
        for n in args.n:
            states, actions = all_states[:n], all_actions[:n]
            for kind in FIT_KINDS:
                if kind in args.estimators:
                    start = time.perf_counter()
                    fit = fit_reward(model, features, states, actions, kind, args.l2)
                    record(kind, n, fit, time.perf_counter() - start)
            if "posterior" in args.estimators:
                start = time.perf_counter()
                fit = posterior_mode(base, model, states, actions)
                if fit is not None:
                    record("posterior", n, fit, time.perf_counter() - start)
            if "nearest_sprite" in args.estimators and n == 1 and base.family == "GridWorld":
                record("nearest_sprite", 1, Fit(nearest_sprite_reward(base, states), 0.0, True), 0.0)
        bar.update(1)
        bar.set_postfix(env=env_id.split("/")[-1], task=task.index, refresh=False)
    return rows


def summary_table(rows: list[dict], ns: Sequence[int]) -> str:
    """Markdown: mean normalized EVD [95% bootstrap CI] and mean raw EVD per env x estimator x n."""
    columns = [0] + list(ns)
    lines = [
        "| env | estimator | " + " | ".join(f"n={n}" for n in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    envs = list(dict.fromkeys((r["env_id"], r["env_kwargs"]) for r in rows))
    keys = sorted({(r["env_id"], r["env_kwargs"], r["estimator"]) for r in rows}, key=lambda k: (envs.index(k[:2]), ESTIMATORS.index(k[2])))
    for env_id, kwargs, estimator in keys:
        cells = []
        for n in columns:
            chosen = [r for r in rows if (r["env_id"], r["env_kwargs"], r["estimator"], r["n"]) == (env_id, kwargs, estimator, n)]
            if not chosen:
                cells.append("")
                continue
            stats = summarize([r["normalized_evd"] for r in chosen], seed=0)
            evd = float(np.mean([r["evd"] for r in chosen]))
            cells.append(f"{stats['mean']:.3f} [{stats['ci_low']:.2f}, {stats['ci_high']:.2f}] ({evd:.2f})")
        label = env_id.split("/")[-1] + ("" if kwargs == "{}" else f" {kwargs}")
        lines.append(f"| {label} | {estimator} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], ns: Sequence[int], path: Path) -> None:
    """One panel per env: mean normalized EVD (95% CI band) against n, one line per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys((r["env_id"], r["env_kwargs"]) for r in rows))  # in the order they ran
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for ax, (env_id, kwargs) in zip(axes[0], envs):
        for estimator in ESTIMATORS:
            chosen = [r for r in rows if (r["env_id"], r["env_kwargs"], r["estimator"]) == (env_id, kwargs, estimator)]
            if not chosen:
                continue
            if estimator == "prior":
                value = float(np.mean([r["normalized_evd"] for r in chosen]))
                ax.axhline(value, color="grey", linestyle="--", label=LABELS[estimator])
                continue
            xs = sorted({r["n"] for r in chosen})
            stats = [summarize([r["normalized_evd"] for r in chosen if r["n"] == n], seed=0) for n in xs]
            means = [s["mean"] for s in stats]
            line = ax.plot(xs, means, marker="o", label=LABELS[estimator])[0]
            ax.fill_between(xs, [s["ci_low"] for s in stats], [s["ci_high"] for s in stats], color=line.get_color(), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ns), [str(n) for n in ns])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("demos n")
        ax.set_ylabel("normalized EVD (0 expert, 1 uniform)")
        ax.set_title(env_id.split("/")[-1] + ("" if kwargs == "{}" else f"\n{kwargs}"), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--env", action="append", help=f"registered id (repeatable; default: {', '.join(DEFAULT_ENVS)})")
    parser.add_argument("--env-kwargs", default="{}", help="JSON kwargs for every --env (default {})")
    parser.add_argument("--tasks", type=int, default=24, help="held-out tasks per env (default 24)")
    parser.add_argument("--split", default="test", help="split of the tasks (default test)")
    parser.add_argument("--task-seed", type=int, default=1, help="seed of the task stream (default 1)")
    parser.add_argument("--demo-seed", type=int, default=0, help="seed of the demos (task i uses SeedSequence([seed, i]); default 0)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="demo counts (default 1 2 4 8 16 32)")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 weight of the tabular and linear fits (default 0.01)")
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS, help="default: all")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/information_curve"), help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.env = args.env or list(DEFAULT_ENVS)
    for env_id in args.env:
        try:
            mandril_envs.check_env_id(env_id, "--env")
        except (TypeError, ValueError) as error:
            parser.error(str(error))
    try:
        args.env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as error:
        parser.error(f"--env-kwargs is not JSON: {error}")
    if not isinstance(args.env_kwargs, dict):
        parser.error(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r}")
    if args.tasks < 1 or min(args.n) < 1 or not math.isfinite(args.l2) or args.l2 < 0:
        parser.error("--tasks and every --n must be >= 1, --l2 finite and >= 0")
    args.n = sorted(set(args.n))
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    from tqdm.auto import tqdm

    started = time.perf_counter()
    rows: list[dict] = []
    try:
        with tqdm(total=args.tasks * len(args.env), desc="information curve", disable=args.no_progress) as bar:
            for env_id in args.env:
                rows += run_env(env_id, args.env_kwargs, args, bar)
    except ValueError as error:
        print(f"information_curve: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "information_curve.csv", rows)
    table = summary_table(rows, args.n)
    unconverged = sum(not r["converged"] for r in rows)
    fits = sum(r["estimator"] in ("tabular", "linear", "posterior") for r in rows)
    footer = (
        f"\nMean normalized EVD [95% bootstrap CI over tasks] (mean raw EVD); {args.tasks} {args.split!r} tasks "
        f"(task seed {args.task_seed}), demo seed {args.demo_seed}, L2 {args.l2}; {fits - unconverged}/{fits} fits reached their "
        f"gradient tolerance (MaxEnt {FIT_GRAD_TOL:g} per step, posterior {GRAD_TOL:g}); {time.perf_counter() - started:.0f} s.\n"
    )
    atomic_write_text(args.out / "information_curve.md", table + "\n" + footer)
    plot(rows, args.n, args.out / "information_curve.png")
    print(table + "\n" + footer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
