"""Reference policies computed on the same held-out tasks as MAML, for the report.

Bandits (simulated, vectorised over tasks x repeats, each strategy with its own seeded generator):
``random``, ``greedy`` (posterior mean: Beta(1, 1) prior for Bernoulli arms, N(0, 1) prior with
unit noise for Gaussian arms; ties broken at random), ``epsilon_greedy`` (greedy, but a uniformly
random arm with probability ``epsilon``), ``ucb1`` (each arm once, then
``mean + c sqrt(ln t / n_k)``, ``c = sqrt(2)`` by default: Auer et al.'s
UCB1), ``thompson`` (posterior sampling with the same priors), and
``oracle`` (always the best arm: ``n * max_k mu_k``, exact).

Tabular MDPs (exact, from the known model through :mod:`mandril_envs.planning`): ``random`` (the
uniform policy) and ``optimal`` (value iteration with the known model), per episode times the
number of episodes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mandril_envs.model import TabularModel
from mandril_envs.planning import expected_return, value_iteration

__all__ = ["BANDIT_STRATEGIES", "bandit_reference_returns", "mdp_reference_returns"]

BANDIT_STRATEGIES: tuple[str, ...] = ("random", "greedy", "epsilon_greedy", "ucb1", "thompson")


def _argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of ``(R, K)`` with ties broken uniformly at random."""
    noise = rng.random(values.shape)
    best = values.max(axis=1, keepdims=True)
    return np.argmax(np.where(values >= best - 1e-12, 1.0 + noise, 0.0), axis=1)


def _simulate(strategy: str, means: np.ndarray, n_pulls: int, rng: np.random.Generator, bernoulli: bool, epsilon: float,
              ucb_c: float) -> np.ndarray:
    """Total reward of ``strategy`` over ``n_pulls`` for each row of ``means`` ``(R, K)``; returns ``(R,)``."""
    rows, k = means.shape
    index = np.arange(rows)
    counts = np.zeros((rows, k))
    sums = np.zeros((rows, k))
    total = np.zeros(rows)
    for t in range(n_pulls):
        if strategy == "random":
            arms = rng.integers(0, k, rows)
        elif strategy in ("greedy", "epsilon_greedy"):
            posterior_mean = (sums + 1.0) / (counts + 2.0) if bernoulli else sums / (counts + 1.0)
            arms = _argmax_random_ties(posterior_mean, rng)
            if strategy == "epsilon_greedy":
                explore = rng.random(rows) < epsilon
                arms = np.where(explore, rng.integers(0, k, rows), arms)
        elif strategy == "ucb1":
            if t < k:  # each arm once, in a random order per row
                unpulled = np.where(counts == 0, 1.0 + rng.random((rows, k)), 0.0)
                arms = np.argmax(unpulled, axis=1)
            else:
                bonus = ucb_c * np.sqrt(np.log(t) / counts)
                arms = _argmax_random_ties(sums / counts + bonus, rng)
        elif strategy == "thompson":
            if bernoulli:
                draws = rng.beta(sums + 1.0, counts - sums + 1.0)
            else:
                draws = rng.normal(sums / (counts + 1.0), 1.0 / np.sqrt(counts + 1.0))
            arms = np.argmax(draws, axis=1)
        else:
            raise ValueError(f"strategy must be one of {list(BANDIT_STRATEGIES)}, got {strategy!r}")
        arm_means = means[index, arms]
        reward = (rng.random(rows) < arm_means).astype(float) if bernoulli else arm_means + rng.normal(size=rows)
        counts[index, arms] += 1.0
        sums[index, arms] += reward
        total += reward
    return total


def bandit_reference_returns(means: np.ndarray, n_pulls: int, *, seed: int, repeats: int = 20,
                             arm_distribution: str = "bernoulli", epsilon: float = 0.1,
                             ucb_c: float = float(np.sqrt(2.0)), strategies: Sequence[str] = BANDIT_STRATEGIES) -> dict[str, np.ndarray]:
    """Mean total reward over ``n_pulls`` of each strategy on each task.

    Args:
        means: ``(M, K)`` arm means of ``M`` tasks.
        n_pulls: pulls per run.
        seed: seeds one generator per strategy (``SeedSequence([seed, strategy index])``).
        repeats: runs per task (averaged).
        arm_distribution: ``"bernoulli"`` or ``"gaussian"`` (unit-variance arms).
        epsilon: the epsilon of ``epsilon_greedy``.
        ucb_c: the exploration constant of ``ucb1``.

    Returns:
        ``{strategy: (M,)}`` plus ``"oracle"`` (``n_pulls * max_k mu_k``, exact).
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"means must be (M, K), got shape {means.shape}")
    if n_pulls < 1 or repeats < 1:
        raise ValueError(f"n_pulls and repeats must be >= 1, got n_pulls={n_pulls}, repeats={repeats}")
    if arm_distribution not in ("bernoulli", "gaussian"):
        raise ValueError(f"arm_distribution must be 'bernoulli' or 'gaussian', got {arm_distribution!r}")
    tiled = np.repeat(means, repeats, axis=0)  # (M * R, K)
    out: dict[str, np.ndarray] = {}
    for code, strategy in enumerate(strategies):
        rng = np.random.default_rng(np.random.SeedSequence([seed, code]))
        totals = _simulate(strategy, tiled, n_pulls, rng, arm_distribution == "bernoulli", epsilon, ucb_c)
        out[strategy] = totals.reshape(means.shape[0], repeats).mean(axis=1)
    out["oracle"] = n_pulls * means.max(axis=1)
    return out


def mdp_reference_returns(models: Sequence[TabularModel], n_episodes: int) -> dict[str, np.ndarray]:
    """Exact expected total return over ``n_episodes`` episodes: ``{"random": (M,), "optimal": (M,)}``."""
    random_returns, optimal_returns = [], []
    for model in models:
        uniform = np.full((model.horizon, model.state_dim, model.action_dim), 1.0 / model.action_dim)
        random_returns.append(expected_return(model, uniform))
        optimal_returns.append(expected_return(model, value_iteration(model).policy))
    return {"random": n_episodes * np.asarray(random_returns), "optimal": n_episodes * np.asarray(optimal_returns)}
