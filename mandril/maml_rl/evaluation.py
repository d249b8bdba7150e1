"""Held-out evaluation: returns before and after adaptation on ``split="test"`` tasks, with 95% CIs.

Protocol (the same for every family; see ``benchmarks/maml/README.md``): for each held-out task,
``fast_batch_size`` pre-update episodes are sampled with ``theta`` (the adaptation data: the
budget ``n``), ``num_steps`` inner steps give ``phi``, and the *expected* return per episode of
``theta`` and of ``phi`` is computed exactly from the task's known model
(:func:`mandril_envs.planning.expected_return`); ``n_episodes`` post-update episodes are also
sampled as a cross-check. Figures are totals over ``n = fast_batch_size`` episodes (for one-pull
bandit episodes: over ``n`` pulls). Reference policies run on the same tasks
(:mod:`mandril.maml_rl.reference`). Intervals: the project's seeded percentile bootstrap of the mean
over tasks (:func:`mandril.metrics.summarize`), 95%.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from mandril.functional import Params
from mandril.metrics import summarize as metrics_summarize
from mandril.maml_rl.builders import build_policy, build_sampler
from mandril.maml_rl.config import Config, config_to_dict
from mandril.maml_rl.metalearner import MAMLTRPO
from mandril.maml_rl.policies import Policy, task_params
from mandril.maml_rl.reference import bandit_reference_returns, mdp_reference_returns
from mandril.maml_rl.sampler import MultiTaskSampler, encode_observations
from mandril_envs.planning import expected_return

__all__ = ["evaluate", "summarize", "exact_returns", "format_table", "RESULTS_FORMAT"]

RESULTS_FORMAT = "mandril.maml_rl.test/1"


def summarize(values: Sequence[float], seed: int = 0) -> dict:
    """The project's summary (:func:`mandril.metrics.summarize`: mean, IQM, seeded percentile-bootstrap 95%
    interval of the mean over tasks) plus the sample ``std`` and ``ci_half_width = (ci_high - ci_low) / 2``."""
    x = np.asarray(values, dtype=np.float64)
    out = metrics_summarize(x, confidence=0.95, seed=seed)
    out["std"] = float(x.std(ddof=1)) if x.size > 1 else 0.0
    out["ci_half_width"] = (out["ci_high"] - out["ci_low"]) / 2
    return out


def exact_returns(sampler: MultiTaskSampler, policy: Policy, params: Union[Params, Sequence[Params]], tasks: Sequence[Any]) -> np.ndarray:
    """``(M,)`` exact expected episode return of the (stationary) policy ``params[i]`` in task ``i``.

    ``params``: one dict for every task, a task-batched dict or a list of ``M`` dicts. The policy
    is evaluated at the observation of every state of the task's known model and scored by
    :func:`mandril_envs.planning.expected_return`.
    """
    env = sampler.probe.unwrapped
    batched = isinstance(params, Mapping) and policy.is_task_batched(params)
    out = []
    for i, task in enumerate(tasks):
        p = task_params(params, i) if batched else (params if isinstance(params, Mapping) else params[i])
        env.set_task(task)
        model = env.model
        obs = encode_observations(sampler.observation_space, np.asarray([env.observation(s) for s in range(model.state_dim)]),
                                  sampler.dtype)
        with torch.no_grad():
            probs = torch.softmax(policy.logits(obs, p), dim=-1).to(torch.float64).numpy()
        probs = probs / probs.sum(axis=1, keepdims=True)
        out.append(expected_return(model, np.broadcast_to(probs, (model.horizon, *probs.shape))))
    return np.asarray(out)


def _references(config: Config, sampler: MultiTaskSampler, tasks: Sequence[Any], n: int) -> dict[str, np.ndarray]:
    env = sampler.probe.unwrapped
    if env.family == "Bandit":
        means = np.asarray([task.params["means"] for task in tasks], dtype=np.float64)
        return bandit_reference_returns(means, n * sampler.horizon, seed=config.seed, repeats=config.test.reference_repeats,
                                        arm_distribution=env.config["arm_distribution"], epsilon=config.test.epsilon,
                                        ucb_c=config.test.ucb_c)
    models = []
    for task in tasks:
        env.set_task(task)
        models.append(env.model)
    return mdp_reference_returns(models, n)


def evaluate(config: Config, policy_state: dict, *, n_tasks: Optional[int] = None, progress: bool = False,
             iteration: Optional[int] = None, checkpoint: str = "") -> dict:
    """Adapt the meta-trained policy on held-out tasks and score it, with the references.

    Args:
        config: the run's config (its ``[test]`` table sets the evaluation).
        policy_state: the policy's ``state_dict`` (e.g. ``checkpoint["policy"]``).
        n_tasks: held-out tasks (default ``config.test.n_tasks``).

    Returns:
        A JSON-ready dict: ``protocol``, ``summary`` (``{name: summarize(...)}``, totals over ``n``),
        ``per_task`` lists and timing.
    """
    start = time.perf_counter()
    n_tasks = config.test.n_tasks if n_tasks is None else int(n_tasks)
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    m = config.maml
    sampler = build_sampler(config)
    try:
        policy = build_policy(config, sampler, torch.Generator().manual_seed(0))
        policy.load_state_dict(policy_state)
        learner = MAMLTRPO.from_config(policy, config)
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([config.seed, 2]).generate_state(1)[0]))
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
        tasks = sampler.sample_tasks(n_tasks, "test", seed=config.task_seed, start=config.test.start)
        theta = {k: v.detach() for k, v in policy.params().items()}
        columns: dict[str, list[float]] = {"pre": [], "post": [], "pre_sampled": [], "post_sampled": []}
        chunks = range(0, n_tasks, m.meta_batch_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc=f"maml-rl test {config.name}", unit="chunk")
        for lo in chunks:
            chunk = tasks[lo : lo + m.meta_batch_size]
            seeds = rng.integers(0, 2**31 - 1, size=m.num_steps + 1).tolist()
            rollouts = learner.sample(sampler, chunk, m.fast_batch_size, seeds=seeds, generator=generator,
                                      valid_episodes=config.test.n_episodes)
            columns["pre_sampled"] += rollouts.train[0].episode_returns().mean(dim=1).tolist()
            columns["post_sampled"] += rollouts.valid.episode_returns().mean(dim=1).tolist()
            columns["pre"] += exact_returns(sampler, policy, theta, chunk).tolist()
            columns["post"] += exact_returns(sampler, policy, rollouts.adapted, chunk).tolist()
        n = m.fast_batch_size
        per_task: dict[str, list[float]] = {f"maml_{k}": list(np.asarray(v) * n) for k, v in columns.items()}
        per_task["maml_budget_matched"] = list((np.asarray(columns["pre"]) + np.asarray(columns["post"])) / 2 * n)
        for name, values in _references(config, sampler, tasks, n).items():
            per_task[name] = list(np.asarray(values, dtype=np.float64))
        family = sampler.probe.unwrapped.family
        horizon = sampler.horizon
    finally:
        sampler.close()
    unit = "pulls" if family == "Bandit" and horizon == 1 else "episodes"
    return {
        "format": RESULTS_FORMAT,
        "name": config.name,
        "env_id": config.env.id,
        "env_kwargs": config.env.kwargs,
        "checkpoint": checkpoint,
        "iteration": iteration,
        "split": "test",
        "task_seed": config.task_seed,
        "n_tasks": n_tasks,
        "first_task": config.test.start,
        "protocol": {
            "n": n,
            "unit": unit,
            "horizon": horizon,
            "adaptation_episodes": n,
            "inner_steps": m.num_steps,
            "fast_lr": m.fast_lr,
            "post_sampled_episodes": config.test.n_episodes,
            "description": (
                f"totals over n = {n} {unit}. maml_pre / maml_post: exact expected return of theta / of the adapted "
                f"policy phi (adapted on n = {n} pre-update episodes of {horizon} step(s)), per episode, times n. "
                f"maml_*_sampled: the same from sampled episodes. maml_budget_matched: (pre + post) / 2, the mean per n "
                f"over the 2n episodes spent. References play n {unit} on the same tasks."
            ),
        },
        "summary": {name: summarize(values) for name, values in per_task.items()},
        "per_task": {"task_index": [t.index for t in tasks], **{k: [float(x) for x in v] for k, v in per_task.items()}},
        "config": config_to_dict(config),
        "seconds": round(time.perf_counter() - start, 2),
    }


def format_table(results: dict) -> str:
    """A Markdown table of the summary (mean and 95% CI over held-out tasks)."""
    p = results["protocol"]
    lines = [
        f"{results['name']} ({results['env_id']} {results['env_kwargs']}): totals over n = {p['n']} {p['unit']}, "
        f"{results['n_tasks']} held-out tasks, mean [95% bootstrap CI]",
        "",
        "| policy | total reward | 95% CI |",
        "|---|---:|---|",
    ]
    for name, s in results["summary"].items():
        lines.append(f"| {name} | {s['mean']:.1f} | [{s['ci_low']:.1f}, {s['ci_high']:.1f}] |")
    return "\n".join(lines) + "\n"
