"""Held-out evaluation: returns before and after adaptation on ``split="test"`` tasks, with 95% CIs.

Protocol (the same for every family; see ``benchmarks/maml/README.md``). The budget is ``n``
episodes per task (``[test] budget``; default ``fast_batch_size``; for one-pull bandit episodes,
``n`` pulls). MAML explores with ``m = fast_batch_size`` pre-update episodes sampled with ``theta``,
takes ``num_steps`` inner steps to ``phi`` and exploits with ``phi``. The *expected* return per
episode of ``theta`` and of ``phi`` is computed exactly from the task's known model
(:func:`mandril_envs.planning.expected_return`); ``n_episodes`` post-update episodes are also
sampled as a cross-check. Reported, as totals over ``n``:

* ``maml_budget_matched``: the reward of the ``n`` episodes MAML actually plays, exploration
  counted: ``m * pre + (n - m) * post`` (the ``num_steps * m`` exploration episodes earn what the
  policies that played them earn: ``theta`` exactly, later inner steps by their sampled returns).
  This is the figure comparable with the RL^2 tables, whose agents also pay for exploring.
* ``maml_post``: ``n * post``: ``phi`` for ``n`` episodes, as if the exploration were free.
* ``maml_pre``: ``n * pre``.

Reference policies run on the same tasks and budget (:mod:`mandril.maml_rl.reference`); for
bandits, UCB1's constant (and whether it pulls each arm once first or starts from the prior) and
the Gittins discount are first tuned on train-split tasks
(``[test] tuning_tasks`` tasks from the validation range, never the test tasks). Intervals: the
project's seeded percentile bootstrap of the mean over tasks (:func:`mandril.eval.stats.summarize`), 95%.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from mandril.functional import Params
from mandril.eval.stats import summarize as metrics_summarize
from mandril.maml_rl.builders import build_policy, build_sampler
from mandril.maml_rl.config import VALIDATION_START, Config, config_to_dict
from mandril.maml_rl.metalearner import MAMLTRPO
from mandril.maml_rl.policies import Policy, task_params
from mandril.maml_rl.reference import (
    BANDIT_STRATEGIES,
    GITTINS_GAMMA_GRID,
    UCB_C_GRID,
    bandit_reference_returns,
    mdp_reference_returns,
    tune_bandit_constant,
)
from mandril.maml_rl.sampler import MultiTaskSampler, encode_observations
from mandril_envs.planning import expected_return

__all__ = ["evaluate", "summarize", "exact_returns", "budget_matched", "format_table", "RESULTS_FORMAT"]

#: The ``format`` field of the results JSON that ``maml-rl test`` writes.
RESULTS_FORMAT = "mandril.maml_rl.test/1"


def summarize(values: Sequence[float], seed: int = 0) -> dict:
    """The project's summary (:func:`mandril.eval.stats.summarize`: mean, IQM, seeded percentile-bootstrap 95%
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


def _references(config: Config, sampler: MultiTaskSampler, tasks: Sequence[Any], n: int) -> tuple[dict[str, np.ndarray], dict]:
    """``({name: (M,) totals over n}, tuning record)`` of the reference policies on ``tasks``."""
    env = sampler.probe.unwrapped
    if env.family != "Bandit":
        return mdp_reference_returns(sampler.models(tasks), n), {}
    t = config.test
    pulls = n * sampler.horizon
    arms = env.config["arm_distribution"]

    def means_of(some: Sequence[Any]) -> np.ndarray:
        return np.asarray([task.params["means"] for task in some], dtype=np.float64)

    tuning_tasks = sampler.sample_tasks(t.tuning_tasks, "train", seed=config.task_seed, start=VALIDATION_START)
    tuning_seed = int(np.random.SeedSequence([config.seed, 6]).generate_state(1)[0])
    ucb_tuning = {prior: tune_bandit_constant("ucb1", UCB_C_GRID, means_of(tuning_tasks), pulls, seed=tuning_seed,
                                              repeats=t.reference_repeats, arm_distribution=arms, ucb_prior=prior)
                  for prior in (False, True)}
    prior = max((False, True), key=lambda p: (ucb_tuning[p][1][ucb_tuning[p][0]], not p))  # ties: Auer's start
    c = ucb_tuning[prior][0]
    record: dict[str, Any] = {"tasks": f"train split, indices {VALIDATION_START}..{VALIDATION_START + t.tuning_tasks - 1}",
                              "ucb1_c": c, "ucb1_prior": prior, "ucb1_c_scores": ucb_tuning[False][1],
                              "ucb1_prior_c_scores": ucb_tuning[True][1]}
    means = means_of(tasks)
    common = dict(seed=config.seed, repeats=t.reference_repeats, arm_distribution=arms)
    refs = bandit_reference_returns(means, pulls, epsilon=t.epsilon, ucb_c=t.ucb_c,
                                    strategies=[s for s in BANDIT_STRATEGIES if s != "gittins"], **common)
    refs["ucb1_tuned"] = bandit_reference_returns(means, pulls, ucb_c=c, ucb_prior=prior, strategies=("ucb1",), **common)["ucb1"]
    if arms == "bernoulli":
        gamma, g_scores = tune_bandit_constant("gittins", GITTINS_GAMMA_GRID, means_of(tuning_tasks), pulls, seed=tuning_seed,
                                               repeats=t.reference_repeats, arm_distribution=arms)
        record.update(gittins_gamma=gamma, gittins_gamma_scores=g_scores)
        refs["gittins"] = bandit_reference_returns(means, pulls, gittins_gamma=gamma, strategies=("gittins",), **common)["gittins"]
    oracle = refs.pop("oracle")
    refs["oracle"] = oracle
    return refs, {key: ({str(k): v for k, v in value.items()} if isinstance(value, dict) else value) for key, value in record.items()}


def budget_matched(pre: Sequence[float], later: Sequence[Sequence[float]], post: Sequence[float], explore: int,
                   budget: int) -> np.ndarray:
    """``(M,)`` total reward of ``budget`` episodes: ``explore`` per inner step, the rest with the adapted policy.

    Args:
        pre: ``(M,)`` expected episode return of ``theta`` (plays the first ``explore`` episodes).
        later: per task, the mean episode return of the exploration batches of inner steps 2.. (empty for one step).
        post: ``(M,)`` expected episode return of the adapted policy.
        explore: episodes per inner step (``fast_batch_size``).
        budget: total episodes; exploration beyond it is cut at the budget.
    """
    totals, left = np.zeros(len(pre)), np.full(len(pre), budget, dtype=np.float64)
    for per_episode in [np.asarray(pre, dtype=np.float64), *np.asarray(later, dtype=np.float64).reshape(len(pre), -1).T]:
        used = np.minimum(explore, left)
        totals += used * per_episode
        left -= used
    return totals + left * np.asarray(post, dtype=np.float64)


def evaluate(config: Config, policy_state: dict, *, n_tasks: Optional[int] = None, progress: bool = False,
             iteration: Optional[int] = None, checkpoint: str = "", references: bool = True) -> dict:
    """Adapt the meta-trained policy on held-out tasks and score it, with the references.

    Args:
        config: the run's config (its ``[test]`` table sets the evaluation).
        policy_state: the policy's ``state_dict`` (e.g. ``checkpoint["policy"]``).
        n_tasks: held-out tasks (default ``config.test.n_tasks``).
        references: also score the reference policies (and tune the bandit ones first).

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
        columns: dict[str, list] = {"pre": [], "post": [], "pre_sampled": [], "post_sampled": [], "later_sampled": []}
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
            later = [b.episode_returns().mean(dim=1) for b in rollouts.train[1:]]  # inner steps 2.. (if any)
            columns["later_sampled"] += torch.stack(later, dim=1).tolist() if later else [[] for _ in chunk]
            columns["post_sampled"] += rollouts.valid.episode_returns().mean(dim=1).tolist()
            columns["pre"] += exact_returns(sampler, policy, theta, chunk).tolist()
            columns["post"] += exact_returns(sampler, policy, rollouts.adapted, chunk).tolist()
        n = config.test.budget or m.fast_batch_size
        later = columns.pop("later_sampled")
        per_task: dict[str, list[float]] = {"maml_budget_matched": list(budget_matched(columns["pre"], later, columns["post"],
                                                                                       m.fast_batch_size, n))}
        per_task.update({f"maml_{k}": list(np.asarray(v) * n) for k, v in columns.items()})
        reference_totals, tuning = _references(config, sampler, tasks, n) if references else ({}, {})
        for name, values in reference_totals.items():
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
            "adaptation_episodes": m.fast_batch_size,
            "inner_steps": m.num_steps,
            "fast_lr": m.fast_lr,
            "post_sampled_episodes": config.test.n_episodes,
            "description": (
                f"totals over a budget of n = {n} {unit}. MAML explores with m = {m.fast_batch_size} episode(s) of {horizon} "
                f"step(s) per inner step ({m.num_steps}), then exploits with the adapted phi. maml_budget_matched: the "
                f"n {unit} MAML plays, exploration counted (m * pre + (n - m) * post): comparable with the references, which "
                f"play n {unit} on the same tasks. maml_post / maml_pre: n x the exact expected return per episode of phi / "
                f"of theta (maml_post counts the exploration as free). maml_*_sampled: the same from sampled episodes."
            ),
        },
        "reference_tuning": tuning,
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
