"""Information curve: how much do n demonstrations of a held-out task reveal about its reward?

For each family (registered id), for each of ``--tasks`` held-out tasks and n = 1, 2, 4, ..., 32
soft-expert demos of it (nested: the first n of one seeded set of 32), the reward is fitted by
converged, start-conditioned MaxEnt IRL and scored by :func:`mandril.eval.score` against the
task's true model (EVD and normalized EVD: 0 expert, 1 uniform policy). Estimators:

* ``tabular``: one reward per state, MaxEnt with a small L2 (``--l2``); no structure, no prior
  (the methods registry's ``maxent_tabular``, run to a gradient tolerance: :func:`fit_reward`).
* ``linear``: a linear reward on the task's ``features`` input, MaxEnt with the same L2
  (``maxent_linear``); not on families with state-action rewards (the bandits), which state
  features cannot describe.
* ``posterior``: the ``bayes`` reference of the methods registry (:func:`mandril.methods.bayes.posterior_mode`):
  the mode of the exact Bayesian posterior over the task's reward under the family's own prior
  (``env.unwrapped.reward_prior()``) given the n demos' actions under the soft expert
  (``prod_t pi(a_t | s_t, t)``; on deterministic grids this is the start-conditioned MaxEnt
  likelihood, on stochastic dynamics MaxEnt's ``log Z - <mu_D, r>`` is only a surrogate of it).
  ``GridWorld-v0``: which of the sprites is the goal; the linear-intent families: the Gaussian prior
  around the shared mean; ``TabularMDP-v0``: ``N(1, 1)`` state-action means; Bernoulli bandits: arm
  means uniform on ``[0, 1]``. It knows everything the family shares and lacks only the task's own
  draw: a method that learns the prior from training tasks should not expect to beat it (it is a
  mode, not the Bayes-optimal decision for EVD, so it is a reference, not a strict bound).
* ``prior``: the prior mean reward (no demo), shown at n = 0.
* ``nearest_sprite`` (``GridWorld-v0``, n = 1): issue 10's rule: the goal is the sprite nearest
  to where the first demo ends.

The expert's temperature is 1, or :data:`EXPERT_TEMPERATURES` for an id listed there (the quick
suite's), or ``--temperature``.

"Start-conditioned": the likelihood's initial-state distribution is the demos' own empirical
start distribution (the registry's ``likelihood="start"``, as every MaxEnt-family method); EVD is scored from
the task's real one.

    python benchmarks/information_curve.py                       # the four families, 24 tasks
    python benchmarks/information_curve.py --env mandril_envs/GridWorld-Intent-v0 --tasks 8 \\
        --env-kwargs '{"goal_spread": 2.0}' --out /tmp/curve        # explore a setting
    python benchmarks/information_curve.py --env mandril_envs/Bandit-K10-v0 --split validation \
        --estimators posterior prior --temperature 0.3 --out /tmp/bandit   # choose a bandit expert
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

import mandril
import mandril_envs
from mandril.bench.work import held_out_tasks
from mandril.core.io import atomic_write_bytes, atomic_write_text, write_csv
from mandril.eval import score, summarize
from mandril.methods import hide_reward
from mandril.methods.bayes import posterior_mode as bayes_posterior_mode
from mandril_envs.demos import generate
from mandril_envs.model import TabularModel

DEFAULT_ENVS = ("mandril_envs/GridWorld-v0", "mandril_envs/GridWorld-Intent-v0", "mandril_envs/TabularMDP-Linear-v0", "mandril_envs/Bandit-K10-v0")
#: The soft expert's temperature per env id where it is not 1 (as in ``benchmarks/suites/quick.toml``).
EXPERT_TEMPERATURES = {"mandril_envs/Bandit-K10-v0": 0.4}
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
#: The posterior mode (the ``bayes`` reference's projected Newton) stops at this projected-gradient norm (its default).
GRAD_TOL = 1e-6


@dataclass(frozen=True)
class Fit:
    """A fitted reward ``(S,)`` and how the fit ended."""

    reward: np.ndarray
    grad_norm: float
    converged: bool


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


def posterior_mode(base: mandril_envs.TabularTaskEnv, model: TabularModel, states: np.ndarray, actions: np.ndarray, temperature: float = 1.0) -> Fit:
    """The ``bayes`` reference (:func:`mandril.methods.bayes.posterior_mode`): the posterior mode under the
    family's prior (``base.reward_prior()``) of a soft expert at ``temperature``, on the model with its
    reward hidden."""
    mode = bayes_posterior_mode(hide_reward(model), base.reward_prior(), states, actions, temperature)
    return Fit(mode.reward, mode.grad_norm, mode.converged)


def prior_reward(base: mandril_envs.TabularTaskEnv) -> np.ndarray:
    """The structure-aware reward with no demo: the prior mean reward."""
    return base.reward_prior().mean_reward()


def nearest_sprite_reward(base: mandril_envs.TabularTaskEnv, states: np.ndarray) -> np.ndarray:
    """GridWorld-v0: the candidate reward whose goal is the sprite nearest (Chebyshev) to the first demo's last state."""
    size = base.config["size"]
    prior = base.reward_prior()
    row, col = divmod(int(states[0, -1]), size)
    cells = [divmod(int(label), size) for label in prior.labels]
    nearest = int(np.argmin([max(abs(r - row), abs(c - col)) for r, c in cells]))
    return np.array(prior.rewards[nearest])


def expert_temperature(env_id: str, override: Optional[float] = None) -> float:
    """The soft expert's temperature on ``env_id``: ``override``, else :data:`EXPERT_TEMPERATURES`, else 1."""
    return float(override) if override is not None else EXPERT_TEMPERATURES.get(env_id, 1.0)


def _demo_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def run_env(env_id: str, env_kwargs: dict, args: argparse.Namespace, bar) -> list[dict]:
    """Every estimator on ``args.tasks`` held-out tasks of ``env_id``: one row per estimator x n x task."""
    env = gym.make(env_id, **env_kwargs)
    base = env.unwrapped
    rows: list[dict] = []
    n_max = max(args.n)
    temperature = expert_temperature(env_id, args.temperature)
    for task in held_out_tasks(base, args.split, args.tasks, args.task_seed):
        base.set_task(task)
        model = base.model
        demos = generate(env, n_max, policy="soft", temperature=temperature, seed=_demo_seed(args.demo_seed, task.index))
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
                    "expert_temperature": temperature,
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

        if "prior" in args.estimators:
            record("prior", 0, Fit(prior_reward(base), 0.0, True), 0.0)
        for n in args.n:
            states, actions = all_states[:n], all_actions[:n]
            for kind in FIT_KINDS:
                if kind in args.estimators and not (kind == "linear" and model.state_action_reward):  # state features cannot tell actions apart
                    start = time.perf_counter()
                    fit = fit_reward(model, features, states, actions, kind, args.l2)
                    record(kind, n, fit, time.perf_counter() - start)
            if "posterior" in args.estimators:
                start = time.perf_counter()
                fit = posterior_mode(base, model, states, actions, temperature)
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
    parser.add_argument("--split", default="test", help="split of the tasks (default test; 'validation': train-split tasks no training pool reaches)")
    parser.add_argument("--temperature", type=float, default=None, help=f"the soft expert's temperature for every --env (default: {EXPERT_TEMPERATURES} per id, else 1)")
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
    if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature > 0):
        parser.error(f"--temperature must be a finite number > 0, got {args.temperature}")
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
