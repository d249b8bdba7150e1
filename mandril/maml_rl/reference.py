"""Reference policies computed on the same held-out tasks as MAML, for the report.

Bandits (simulated, vectorised over tasks x repeats, each strategy with its own seeded generator):
``random``, ``greedy`` (posterior mean: Beta(1, 1) prior for Bernoulli arms, N(0, 1) prior with
unit noise for Gaussian arms; ties broken at random), ``epsilon_greedy`` (greedy, but a uniformly
random arm with probability ``epsilon``), ``ucb1`` (each arm once, then
``mean + c sqrt(ln t / n_k)``, ``c = sqrt(2)`` by default: Auer et al.'s
UCB1; with ``ucb_prior`` no arm is pulled first: ``posterior mean + c sqrt(ln(t + 1) / (n_k + 1))``
with the same priors as ``greedy``, so that with fewer pulls than arms it is not round robin), ``thompson`` (posterior sampling with the same priors), ``gittins`` (Bernoulli arms only:
the arm with the largest Gittins index for discount ``gamma``, :mod:`mandril.maml_rl.gittins`), and
``oracle`` (always the best arm: ``n * max_k mu_k``, exact).

:func:`tune_bandit_constant` picks a strategy's one constant (UCB1's ``c``, the Gittins
discount) from a grid by the mean total reward on tasks it is given: the evaluation gives it
training-split tasks, never the test tasks it reports on.

Tabular MDPs (exact, from the known model through :mod:`mandril_envs.planning`): ``random`` (the
uniform policy) and ``optimal`` (value iteration with the known model), per episode times the
number of episodes.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np

from mandril.maml_rl.gittins import gittins_indices
from mandril_envs.model import TabularModel
from mandril_envs.planning import expected_return, value_iteration

__all__ = ["BANDIT_STRATEGIES", "UCB_C_GRID", "GITTINS_GAMMA_GRID", "bandit_reference_returns", "tune_bandit_constant",
           "mdp_reference_returns"]

#: The reference bandit policies, scored on the same held-out tasks as MAML.
BANDIT_STRATEGIES: tuple[str, ...] = ("random", "greedy", "epsilon_greedy", "ucb1", "thompson", "gittins")

#: The UCB1 constants :func:`tune_bandit_constant` chooses from (``sqrt(2)`` is the textbook one).
UCB_C_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, float(np.sqrt(2.0)))
#: The Gittins discounts it chooses from.
GITTINS_GAMMA_GRID: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def _argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of ``(R, K)`` with ties broken uniformly at random."""
    noise = rng.random(values.shape)
    best = values.max(axis=1, keepdims=True)
    return np.argmax(np.where(values >= best - 1e-12, 1.0 + noise, 0.0), axis=1)


def _simulate(strategy: str, means: np.ndarray, n_pulls: int, rng: np.random.Generator, bernoulli: bool, epsilon: float,
              ucb_c: float, gittins_table: Optional[np.ndarray] = None, ucb_prior: bool = False) -> np.ndarray:
    """Total reward of ``strategy`` over ``n_pulls`` for each row of ``means`` ``(R, K)``; returns ``(R,)``.

    ``gittins_table``: ``(n_pulls, n_pulls)`` indices by (successes, failures), for ``"gittins"``.
    """
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
        elif strategy == "ucb1" and ucb_prior:
            posterior_mean = (sums + 1.0) / (counts + 2.0) if bernoulli else sums / (counts + 1.0)
            arms = _argmax_random_ties(posterior_mean + ucb_c * np.sqrt(np.log(t + 1.0) / (counts + 1.0)), rng)
        elif strategy == "ucb1":
            if t < k:  # each arm once, in a random order per row
                unpulled = np.where(counts == 0, 1.0 + rng.random((rows, k)), 0.0)
                arms = np.argmax(unpulled, axis=1)
            else:
                bonus = ucb_c * np.sqrt(np.log(t) / counts)
                arms = _argmax_random_ties(sums / counts + bonus, rng)
        elif strategy == "gittins":
            successes = sums.astype(np.int64)
            arms = _argmax_random_ties(gittins_table[successes, counts.astype(np.int64) - successes], rng)
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
                             ucb_c: float = float(np.sqrt(2.0)), ucb_prior: bool = False, gittins_gamma: float = 0.99,
                             strategies: Sequence[str] = BANDIT_STRATEGIES) -> dict[str, np.ndarray]:
    """Mean total reward over ``n_pulls`` of each strategy on each task.

    Args:
        means: ``(M, K)`` arm means of ``M`` tasks.
        n_pulls: pulls per run.
        seed: seeds one generator per strategy (``SeedSequence([seed, strategy index])``, the index in
            :data:`BANDIT_STRATEGIES`, so a strategy's numbers do not depend on which others run).
        repeats: runs per task (averaged).
        arm_distribution: ``"bernoulli"`` or ``"gaussian"`` (unit-variance arms).
        epsilon: the epsilon of ``epsilon_greedy``.
        ucb_c: the exploration constant of ``ucb1``.
        ucb_prior: ``ucb1`` starts from the prior instead of pulling each arm once.
        gittins_gamma: the discount of ``gittins`` (skipped for Gaussian arms).
        strategies: which of :data:`BANDIT_STRATEGIES` to run.

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
    unknown = sorted(set(strategies) - set(BANDIT_STRATEGIES))
    if unknown:
        raise ValueError(f"strategies must be among {list(BANDIT_STRATEGIES)}, got {unknown}")
    bernoulli = arm_distribution == "bernoulli"
    tiled = np.repeat(means, repeats, axis=0)  # (M * R, K)
    out: dict[str, np.ndarray] = {}
    for strategy in strategies:
        table = None
        if strategy == "gittins":
            if not bernoulli:
                continue
            table = _gittins_table(float(gittins_gamma), int(n_pulls))
        rng = np.random.default_rng(np.random.SeedSequence([seed, BANDIT_STRATEGIES.index(strategy)]))
        totals = _simulate(strategy, tiled, n_pulls, rng, bernoulli, epsilon, ucb_c, table, ucb_prior)
        out[strategy] = totals.reshape(means.shape[0], repeats).mean(axis=1)
    out["oracle"] = n_pulls * means.max(axis=1)
    return out


@functools.lru_cache(maxsize=16)
def _gittins_table(gamma: float, n_pulls: int) -> np.ndarray:
    """:func:`gittins_indices` kept for reuse (tuning tries each discount once; the table is read-only)."""
    table = gittins_indices(gamma, n_pulls)
    table.setflags(write=False)
    return table


def tune_bandit_constant(strategy: str, candidates: Sequence[float], means: np.ndarray, n_pulls: int, *, seed: int,
                         repeats: int = 20, arm_distribution: str = "bernoulli", ucb_prior: bool = False) -> tuple[float, dict[float, float]]:
    """The constant of ``strategy`` (``"ucb1"``: ``c``; ``"gittins"``: the discount) with the best mean total reward.

    Args:
        candidates: the values to try.
        means: ``(M, K)`` arm means of the tasks to tune on (training tasks).
        ucb_prior: passed to ``ucb1`` (:func:`bandit_reference_returns`).

    Returns:
        ``(best value, {value: mean total reward over the tasks})``; ties go to the earlier candidate.
    """
    keyword = {"ucb1": "ucb_c", "gittins": "gittins_gamma"}.get(strategy)
    if keyword is None:
        raise ValueError(f"strategy must be 'ucb1' or 'gittins' (the ones with a constant to tune), got {strategy!r}")
    if not candidates:
        raise ValueError("candidates must be a non-empty sequence of values")
    scores = {}
    for value in candidates:
        totals = bandit_reference_returns(means, n_pulls, seed=seed, repeats=repeats, arm_distribution=arm_distribution,
                                          strategies=(strategy,), ucb_prior=ucb_prior, **{keyword: float(value)})
        scores[float(value)] = float(totals[strategy].mean())
    best = max(scores, key=lambda v: (scores[v], -list(scores).index(v)))
    return best, scores


def mdp_reference_returns(models: Sequence[TabularModel], n_episodes: int) -> dict[str, np.ndarray]:
    """Exact expected total return over ``n_episodes`` episodes: ``{"random": (M,), "optimal": (M,)}``."""
    random_returns, optimal_returns = [], []
    for model in models:
        uniform = np.full((model.horizon, model.state_dim, model.action_dim), 1.0 / model.action_dim)
        random_returns.append(expected_return(model, uniform))
        optimal_returns.append(expected_return(model, value_iteration(model).policy))
    return {"random": n_episodes * np.asarray(random_returns), "optimal": n_episodes * np.asarray(optimal_returns)}
