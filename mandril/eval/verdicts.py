"""The benchmark's verdict rule (win / tie / loss of one method against another) and its error rates by simulation.

The rule (:class:`VerdictRule`), for scores where lower is better (normalized EVD) on the same tasks:

1. Scores closer than ``tolerance`` (1e-9) tie: a method identical to another is never better or worse.
2. Each comparison gets ``P(A better)`` (rliable's probability of improvement, stratified over runs x
   tasks) and the exact two-sided sign-flip p-value of ``P = 1/2``
   (:func:`mandril.eval.stats.sign_flip_p_value`).
3. The p-values of all the report's comparisons are corrected together (Holm: the chance of any false
   win or loss among them is at most ``alpha``; or Benjamini-Hochberg: the expected share of false
   ones among the calls is at most ``alpha``).
4. A comparison is a **win** when its corrected p-value is at most ``alpha`` and ``P > 1/2``, a **loss**
   when it is at most ``alpha`` and ``P < 1/2``, a **tie** otherwise ("not shown to differ", not
   "equal"); fewer than ``min_tasks`` common tasks get no verdict.

:func:`simulate_rule` measures what the rule does on score matrices drawn from a stated model
(:class:`SimulationConfig`): how often it calls a difference where there is none, and how often it
detects a method that is better on 70% of the tasks, for a report's runs, tasks and number of
comparisons.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mandril.eval.stats import _task_poi_batched, benjamini_hochberg, holm, sign_flip_p_values

__all__ = ["VerdictRule", "SimulationConfig", "call_verdicts", "correct", "simulate_rule", "VERDICTS"]

#: Verdict names, in the order reports list them.
VERDICTS = ("win", "tie", "loss", "too few tasks")
_CORRECTIONS = {"holm": "Holm's step-down correction (family-wise error rate)", "bh": "the Benjamini-Hochberg procedure (false discovery rate)",
                "none": "no correction"}


@dataclass(frozen=True)
class VerdictRule:
    """How a comparison becomes a win, tie or loss (module docstring).

    Attributes:
        alpha: the error rate the correction holds (family-wise for Holm, false discovery rate for BH).
        correction: ``"holm"``, ``"bh"`` (Benjamini-Hochberg) or ``"none"``.
        tolerance: scores closer than this tie.
        min_tasks: comparisons on fewer common tasks get no verdict.
    """

    alpha: float = 0.05
    correction: str = "holm"
    tolerance: float = 1e-9
    min_tasks: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in _CORRECTIONS:
            raise ValueError(f"correction must be one of {list(_CORRECTIONS)}, got {self.correction!r}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.min_tasks < 1:
            raise ValueError(f"min_tasks must be >= 1, got {self.min_tasks}")

    def describe(self) -> str:
        """One sentence naming the rule."""
        return (f"a win (loss) when the exact sign-flip test of P(MandRIL better) = 1/2 over tasks, corrected over all the report's comparisons "
                f"by {_CORRECTIONS[self.correction]}, rejects at level {self.alpha:g} with P above (below) 1/2; a tie otherwise; "
                f"differences below {self.tolerance:g} in normalized EVD are ties; fewer than {self.min_tasks} common tasks get no verdict")


def correct(rule: VerdictRule, p_values: Sequence[float]) -> np.ndarray:
    """The p-values adjusted by ``rule.correction`` (as many as given: one family of comparisons)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    if rule.correction == "holm":
        return holm(p)
    if rule.correction == "bh":
        return benjamini_hochberg(p)
    return p.copy()


def call_verdicts(rule: VerdictRule, p_values: Sequence[float], p_better: Sequence[float], tasks: Sequence[int],
                  corrected: bool = True) -> tuple[list[str], np.ndarray]:
    """Verdicts of one family of comparisons, and their adjusted p-values (NaN where no verdict).

    Args:
        rule: the rule.
        p_values: ``(K,)`` raw p-values.
        p_better: ``(K,)`` ``P(A better)``.
        tasks: ``(K,)`` common tasks of each comparison (fewer than ``rule.min_tasks``: no verdict, and not
            counted among the comparisons corrected for).
        corrected: apply ``rule.correction`` (``False``: each comparison on its own, as when re-testing one
            already named on a subset of the data).
    """
    p, better, n = (np.asarray(v, dtype=np.float64) for v in (p_values, p_better, tasks))
    if not p.shape == better.shape == n.shape or p.ndim != 1:
        raise ValueError(f"p_values, p_better and tasks must be 1-D of one length, got {p.shape}, {better.shape}, {n.shape}")
    counted = n >= rule.min_tasks
    adjusted = np.full(p.shape, np.nan)
    adjusted[counted] = correct(rule, p[counted]) if corrected else p[counted]
    verdicts = []
    for i in range(p.size):
        if not counted[i]:
            verdicts.append("too few tasks")
        elif adjusted[i] <= rule.alpha and better[i] != 0.5:
            verdicts.append("win" if better[i] > 0.5 else "loss")
        else:
            verdicts.append("tie")
    return verdicts, adjusted


@dataclass(frozen=True)
class SimulationConfig:
    """The model the rule is measured on: normalized EVD ``exp(level + task_t + effect_t + noise)``.

    Each task has its own level (``task_spread``: sd of the log score across tasks, shared by both
    methods); each run adds independent log-normal noise (``run_noise``) to each method's score. With
    no effect both methods have the same distribution on every task. With an effect, method A is better
    (its log score lower by ``effect``) on each task with probability ``share_better`` and worse by as much
    on the others: a method "better on 70% of tasks", each task's difference larger than a run's noise.

    Attributes:
        share_better: the share of tasks on which A is better, in the effect scenario.
        effect: the per-task difference of log normalized EVD (1.0: a factor of e).
        run_noise: sd of log normalized EVD from run to run (a fresh preparation and fresh demos).
        task_spread: sd of log normalized EVD across tasks.
        level: mean log normalized EVD.
        null_comparisons: comparisons simulated in the null scenario (the pool that families of
            comparisons are drawn from).
        effect_comparisons: the same, in the scenario with real differences.
        real_share: the share of a family's comparisons that are real differences of this size, for the
            second power figure (the first has one real difference among nulls).
        families: families of comparisons drawn to measure the correction.
        seed: the simulation's seed.
    """

    share_better: float = 0.7
    effect: float = 1.0
    run_noise: float = 0.5
    task_spread: float = 1.0
    level: float = -4.0
    null_comparisons: int = 4000
    effect_comparisons: int = 2000
    real_share: float = 0.5
    families: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("share_better", "real_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("effect", "run_noise", "task_spread"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("null_comparisons", "effect_comparisons", "families"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def describe(self) -> str:
        """One sentence naming the model."""
        return (f"log normalized EVD = task level (sd {self.task_spread:g} across tasks) + run noise (sd {self.run_noise:g}); "
                f"'better on {self.share_better:.0%} of tasks': lower by {self.effect:g} on each task with probability {self.share_better:g}, "
                f"higher by {self.effect:g} otherwise")


def _scores(rng: np.random.Generator, config: SimulationConfig, rows: int, runs: int, tasks: int, effect: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``, each ``(rows, runs, tasks)`` normalized EVD of methods A and B."""
    base = config.level + config.task_spread * rng.standard_normal((rows, 1, tasks))
    shift = np.zeros((rows, 1, tasks))
    if effect:
        shift = np.where(rng.random((rows, 1, tasks)) < config.share_better, -config.effect, config.effect)
    a = np.exp(base + shift + config.run_noise * rng.standard_normal((rows, runs, tasks)))
    b = np.exp(base + config.run_noise * rng.standard_normal((rows, runs, tasks)))
    return a, b


def _p_values(rule: VerdictRule, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw p-values and ``P(A better)`` of each row, computed exactly as the report does (lower is better)."""
    per_task = _task_poi_batched(-a, -b, rule.tolerance)
    scale = 2 * a.shape[1] * b.shape[1]
    p = sign_flip_p_values(np.rint((per_task - 0.5) * scale).astype(np.int64))
    return p, per_task.mean(axis=1)


@functools.lru_cache(maxsize=32)
def simulate_rule(rule: VerdictRule, runs: int, tasks: int, comparisons: int, config: SimulationConfig = SimulationConfig()) -> dict:
    """The rule's error rates with ``runs`` x ``tasks`` scores per method and ``comparisons`` comparisons corrected together.

    Returns:
        ``false_call_rate``: the share of comparisons called a win or loss when no method differs from
        any other (all ``comparisons`` null); ``chance_verdicts``: that share times ``comparisons``;
        ``power``: the chance of calling a win for a method better on ``share_better`` of the tasks when it
        is the only real difference among the ``comparisons`` (the hardest case for a correction);
        ``power_shared``: the same when a share ``real_share`` of the comparisons are such differences;
        ``false_call_rate_uncorrected`` / ``power_uncorrected``: the same for one comparison on its own
        at level ``alpha``; and the inputs.
    """
    if runs < 1 or tasks < 1 or comparisons < 1:
        raise ValueError(f"runs, tasks and comparisons must be >= 1, got {runs}, {tasks}, {comparisons}")
    rng = np.random.default_rng(config.seed)
    null_p, _ = _p_values(rule, *_scores(rng, config, config.null_comparisons, runs, tasks, effect=False))
    effect_p, effect_better = _p_values(rule, *_scores(rng, config, config.effect_comparisons, runs, tasks, effect=True))
    detected = (effect_p <= rule.alpha) & (effect_better > 0.5)
    counted = tasks >= rule.min_tasks
    # families of comparisons drawn from the simulated pools; the correction applied to each
    draws = rng.integers(0, null_p.size, (config.families, comparisons))
    nulls = null_p[draws]
    real = max(1, int(round(config.real_share * comparisons)))
    effect_draws = rng.integers(0, effect_p.size, (config.families, real))
    false_calls = 0.0
    hits, shared_hits = 0, 0.0
    for f in range(config.families):
        false_calls += float((correct(rule, nulls[f]) <= rule.alpha).sum())
        mixed = nulls[f].copy()
        mixed[0] = effect_p[effect_draws[f, 0]]
        hits += bool(correct(rule, mixed)[0] <= rule.alpha and effect_better[effect_draws[f, 0]] > 0.5)
        mixed[:real] = effect_p[effect_draws[f]]
        shared_hits += float(((correct(rule, mixed)[:real] <= rule.alpha) & (effect_better[effect_draws[f]] > 0.5)).mean())
    return {
        "runs": runs, "tasks": tasks, "comparisons": comparisons, "rule": rule, "config": config,
        "false_call_rate": false_calls / (config.families * comparisons) if counted else 0.0,
        "chance_verdicts": false_calls / config.families if counted else 0.0,
        "power": hits / config.families if counted else 0.0,
        "power_shared": shared_hits / config.families if counted else 0.0,
        "false_call_rate_uncorrected": float((null_p <= rule.alpha).mean()) if counted else 0.0,
        "power_uncorrected": float(detected.mean()) if counted else 0.0,
    }
