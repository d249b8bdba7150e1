"""The MAML-TRPO run configuration: nested dataclasses loaded from a TOML file.

A config file has top-level keys (``name``, ``seed``, ``task_seed``, ``output_dir``,
``checkpoint_every``) and one table per part: ``[env]``, ``[policy]``, ``[maml]``,
``[advantage]``, ``[trpo]``, ``[sampler]``, ``[test]``, ``[validation]``. Every key is optional (the dataclass
default is used); unknown keys, values of the wrong type, non-positive sizes and non-positive
learning rates are refused with a ``ValueError``/``TypeError`` that names the key, the value and
what is allowed.

Example (``benchmarks/maml/bandit-k5-n100.toml``)::

    name = "bandit-k5-n100"
    [env]
    id = "mandril_envs/Bandit-K5-v0"
    kwargs = { horizon = 1 }
    [maml]
    fast_batch_size = 100
    fast_lr = 1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

from mandril.core.config import build_dataclass, dataclass_to_dict, load_toml

__all__ = [
    "EnvConfig",
    "PolicyConfig",
    "MAMLConfig",
    "AdvantageConfig",
    "TRPOConfig",
    "SamplerConfig",
    "TestConfig",
    "ValidationConfig",
    "Config",
    "VALIDATION_START",
    "load_config",
    "config_from_dict",
    "config_to_dict",
]


def _positive(section: str, name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"[{section}] {name} must be > 0, got {value!r}")


#: The most inner steps (``[maml] num_steps``), and the most tasks or episodes of any one count
#: (held-out tasks, batch sizes): the suites' bound on held-out tasks.
MAX_NUM_STEPS = 100
MAX_TASKS = 100_000


def _at_most(section: str, name: str, value: int, maximum: int) -> None:
    if value > maximum:
        raise ValueError(f"[{section}] {name} must be <= {maximum:,}, got {value!r}")


def _choice(section: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"[{section}] {name} must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class EnvConfig:
    """Which task family to meta-train on.

    Attributes:
        id: a registered Gymnasium id whose ``env.unwrapped`` is a :class:`mandril_envs.TabularTaskEnv`
            (``sample_tasks``/``set_task``) with a ``Discrete`` action space.
        kwargs: keyword arguments of ``gymnasium.make`` (e.g. ``{horizon = 1}`` for one-pull bandit episodes).
    """

    id: str = "mandril_envs/Bandit-K5-v0"
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("[env] id must be a non-empty Gymnasium id, got ''")


@dataclass(frozen=True)
class PolicyConfig:
    """The policy family.

    Attributes:
        kind: ``"mlp"`` (categorical MLP) or ``"tabular"`` (softmax of a linear map of the
            observation: a logit table when observations are one-hot).
        hidden_sizes: widths of the MLP's hidden layers (ignored by ``tabular``).
        activation: ``"tanh"`` or ``"relu"``.
        dtype: ``"float64"`` (default: the tiny networks here cost nothing more, and the
            finite-difference Hessian-vector products are cleaner) or ``"float32"``.
    """

    kind: str = "mlp"
    hidden_sizes: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _choice("policy", "kind", self.kind, ("mlp", "tabular"))
        _choice("policy", "activation", self.activation, ("tanh", "relu"))
        _choice("policy", "dtype", self.dtype, ("float64", "float32"))
        for i, width in enumerate(self.hidden_sizes):
            _positive("policy", f"hidden_sizes[{i}]", width)


@dataclass(frozen=True)
class MAMLConfig:
    """The meta-learning loop.

    Attributes:
        num_batches: meta-iterations (TRPO steps) to train for.
        meta_batch_size: tasks per meta-iteration.
        fast_batch_size: episodes per task for each inner step (the adaptation data) and for the
            post-update (validation) episodes. In the benchmark configs this is the budget ``n``.
        fast_lr: the inner (REINFORCE) step size.
        num_steps: inner gradient steps (fresh episodes are sampled before each).
        first_order: first-order MAML (the inner gradient is treated as a constant).
        inner_objective: ``"reinforce"`` (``log pi * A``) or ``"lvc"`` (``pi / stop_gradient(pi) * A``: the
            same inner gradient, and a Hessian that credits how ``theta`` explores; ProMP's
            low-variance curvature estimator). See :meth:`mandril.maml_rl.metalearner.MAMLTRPO.inner_loss`.
        exploration_entropy: ``beta >= 0``: the outer (TRPO) objective gains ``beta`` times the mean
            entropy of the exploration policy ``pi_theta`` over the exploration steps, so that it keeps
            exploring (0: none).
    """

    num_batches: int = 200
    meta_batch_size: int = 20
    fast_batch_size: int = 20
    fast_lr: float = 0.5
    num_steps: int = 1
    first_order: bool = False
    inner_objective: str = "reinforce"
    exploration_entropy: float = 0.0

    def __post_init__(self) -> None:
        if not self.exploration_entropy >= 0:
            raise ValueError(f"[maml] exploration_entropy must be >= 0, got {self.exploration_entropy!r}")
        _choice("maml", "inner_objective", self.inner_objective, ("reinforce", "lvc"))
        for name in ("num_batches", "meta_batch_size", "fast_batch_size", "fast_lr", "num_steps"):
            _positive("maml", name, getattr(self, name))
        if self.num_steps > MAX_NUM_STEPS:
            raise ValueError(f"[maml] num_steps must be <= {MAX_NUM_STEPS} (each inner step keeps its episodes and graph for the meta-gradient), got {self.num_steps!r}")
        for name in ("meta_batch_size", "fast_batch_size"):
            _at_most("maml", name, getattr(self, name), MAX_TASKS)



@dataclass(frozen=True)
class AdvantageConfig:
    """Advantages for both the inner and the outer loss.

    Attributes:
        gamma: discount in ``(0, 1]`` of the returns the baseline fits and of GAE.
        gae_lambda: GAE lambda in ``[0, 1]`` (1: Monte-Carlo return minus baseline).
        baseline_reg: initial ridge coefficient of the linear feature baseline (raised x10 on failure).
        normalize: normalise the advantages of each task to zero mean and unit variance.
    """

    gamma: float = 0.99
    gae_lambda: float = 1.0
    baseline_reg: float = 1e-5
    normalize: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.gamma <= 1:
            raise ValueError(f"[advantage] gamma must be in (0, 1], got {self.gamma!r}")
        if not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"[advantage] gae_lambda must be in [0, 1], got {self.gae_lambda!r}")
        _positive("advantage", "baseline_reg", self.baseline_reg)


@dataclass(frozen=True)
class TRPOConfig:
    """The outer TRPO step.

    Attributes:
        max_kl: trust-region radius (mean KL between old and new adapted policies).
        cg_iters: conjugate-gradient iterations.
        cg_damping: ``lambda`` added to the Fisher/Hessian-vector product (``(H + lambda I) v``).
        ls_max_steps: backtracking line-search steps.
        ls_backtrack_ratio: step shrink factor in ``(0, 1)``.
        hvp: ``"finite_difference"`` (the MAML paper's choice: no third derivatives) or ``"exact"``
            (double backprop, which differentiates through the inner gradient a second time).
        fd_eps: size of the finite-difference perturbation (its norm in parameter space).
        max_consecutive_rejections: training stops with an error when this many TRPO steps in a
            row were rejected (no step along the natural gradient improved the surrogate within
            ``max_kl``): the run has stalled, typically because ``fast_lr`` saturates the adapted
            policies. Healthy runs here reject at most a few in a row.
    """

    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_max_steps: int = 15
    ls_backtrack_ratio: float = 0.8
    hvp: str = "finite_difference"
    fd_eps: float = 1e-5
    max_consecutive_rejections: int = 20

    def __post_init__(self) -> None:
        for name in ("max_kl", "cg_iters", "ls_max_steps", "fd_eps", "max_consecutive_rejections"):
            _positive("trpo", name, getattr(self, name))
        if not self.cg_damping >= 0:
            raise ValueError(f"[trpo] cg_damping must be >= 0, got {self.cg_damping!r}")
        if not 0 < self.ls_backtrack_ratio < 1:
            raise ValueError(f"[trpo] ls_backtrack_ratio must be in (0, 1), got {self.ls_backtrack_ratio!r}")
        _choice("trpo", "hvp", self.hvp, ("finite_difference", "exact"))


@dataclass(frozen=True)
class SamplerConfig:
    """The multi-task sampler (:mod:`mandril.maml_rl.sampler`).

    Attributes:
        backend: ``"model"`` (default: every episode of every task at once from the tasks' known
            models and the family's reward noise) or ``"gym"`` (Gymnasium vector envs stepping the
            env code itself: the same distribution, slower).
        vector: ``"gym"`` backend: ``"sync"`` (one process) or ``"async"`` (Gymnasium's
            ``AsyncVectorEnv``: one worker process per sub-env, so only sensible with few sub-envs).
        envs_per_task: ``"gym"`` backend: at most this many sub-envs per task; a task's episodes run in rounds.
    """

    backend: str = "model"
    vector: str = "sync"
    envs_per_task: int = 20

    def __post_init__(self) -> None:
        _choice("sampler", "backend", self.backend, ("model", "gym"))
        _choice("sampler", "vector", self.vector, ("sync", "async"))
        _positive("sampler", "envs_per_task", self.envs_per_task)


@dataclass(frozen=True)
class TestConfig:
    """Held-out evaluation (``mandril maml-rl test``).

    Attributes:
        n_tasks: held-out (``split="test"``) tasks.
        budget: ``n``, the episodes (one-pull bandit episodes: pulls) per task that every figure is a
            total over; MAML spends ``fast_batch_size`` of them exploring (0: ``n = fast_batch_size``).
        start: index of the first of them in the test split (tasks ``start .. start + n_tasks - 1``),
            so that a tuning set and a reporting set of test tasks can be kept apart.
        n_episodes: post-update episodes sampled per task (the sampled estimate; the exact expected
            return from the known model is reported too).
        reference_repeats: simulated runs per task of each adaptive reference policy (bandits).
        epsilon: exploration rate of the epsilon-greedy reference.
        ucb_c: exploration constant of the textbook UCB1 reference (``sqrt(2)``: Auer et al. 2002); a
            second UCB1 column uses the constant tuned on training tasks.
        tuning_tasks: train-split tasks (from the validation range, never test tasks) on which UCB1's
            constant and the Gittins discount are chosen (bandits).
    """

    n_tasks: int = 200
    start: int = 0
    budget: int = 0
    n_episodes: int = 20
    reference_repeats: int = 20
    epsilon: float = 0.1
    ucb_c: float = 1.4142135623730951
    tuning_tasks: int = 200

    def __post_init__(self) -> None:
        _positive("test", "ucb_c", self.ucb_c)
        if self.start < 0:
            raise ValueError(f"[test] start must be >= 0, got {self.start!r}")
        if self.budget < 0:
            raise ValueError(f"[test] budget must be >= 0 (0: the adaptation episodes, fast_batch_size), got {self.budget!r}")
        for name in ("n_tasks", "n_episodes", "reference_repeats", "tuning_tasks"):
            _positive("test", name, getattr(self, name))
            _at_most("test", name, getattr(self, name), MAX_TASKS)
        _at_most("test", "budget", self.budget, MAX_TASKS)
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"[test] epsilon must be in [0, 1], got {self.epsilon!r}")


#: Validation tasks are train-split tasks ``VALIDATION_START ...``: never reached by training.
VALIDATION_START = 10_000_000


@dataclass(frozen=True)
class ValidationConfig:
    """Model selection during training, on tasks of the ``train`` split that training never uses.

    Every ``every`` meta-iterations the current ``theta`` is adapted on ``n_tasks`` validation tasks
    (train-split tasks ``VALIDATION_START ...``) and the exact post-adaptation return is logged;
    ``best.pt`` keeps the parameters with the best one. The ``test`` split is never looked at.

    Attributes:
        every: validate every this many meta-iterations (0: never, no ``best.pt``).
        n_tasks: validation tasks.
    """

    every: int = 10
    n_tasks: int = 40

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"[validation] every must be >= 0 (0 disables validation), got {self.every!r}")
        _positive("validation", "n_tasks", self.n_tasks)
        _at_most("validation", "n_tasks", self.n_tasks, MAX_TASKS)


@dataclass(frozen=True)
class Config:
    """A whole MAML-TRPO run.

    Attributes:
        name: the run's name (used in file names and reports).
        seed: seeds every random draw of training (policy init, env seeds, action sampling).
        task_seed: the task stream (``env.sample_tasks(..., seed=task_seed)``); training uses the
            ``train`` split, ``test`` the ``test`` split.
        output_dir: where metrics, checkpoints and the curve go (``runs/maml/<name>`` if empty).
        checkpoint_every: write a checkpoint every this many meta-iterations (and at the end).
    """

    name: str = "maml-rl"
    seed: int = 0
    task_seed: int = 0
    output_dir: str = ""
    checkpoint_every: int = 10
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    trpo: TRPOConfig = field(default_factory=TRPOConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    test: TestConfig = field(default_factory=TestConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if self.maml.num_batches * self.maml.meta_batch_size > VALIDATION_START:
            raise ValueError(f"[maml] num_batches * meta_batch_size must be <= {VALIDATION_START} (validation tasks start there), "
                             f"got {self.maml.num_batches * self.maml.meta_batch_size}")
        if not self.name:
            raise ValueError("name must be a non-empty string, got ''")
        if self.seed < 0 or self.task_seed < 0:
            raise ValueError(f"seed and task_seed must be >= 0, got seed={self.seed}, task_seed={self.task_seed}")
        _positive("top level", "checkpoint_every", self.checkpoint_every)

    @property
    def run_dir(self) -> Path:
        """The output directory."""
        return Path(self.output_dir) if self.output_dir else Path("runs") / "maml" / self.name




def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from plain data (a parsed TOML document or a checkpoint's copy).

    The env id must be a registered ``mandril_envs/`` id: gymnasium imports the module named by an id
    of the form ``module:Env``, and this data comes from files.
    """
    from mandril_envs.registration import check_env_id

    env = data.get("env") if isinstance(data, Mapping) else None
    if isinstance(env, Mapping) and "id" in env:
        check_env_id(env["id"], "[env] id")
    config = build_dataclass(Config, data)
    check_sizes(config)
    return config


def check_sizes(config: Config) -> None:
    """Make the env (its kwargs checked: no gym.make wrapper, a declared render mode) and refuse a
    config whose episode batches would not fit in memory, before any work.

    One meta-iteration keeps, for each of ``num_steps + 1`` rounds, ``meta_batch_size x
    fast_batch_size`` episodes of ``H`` steps (observation, action, reward, mask, log-probability,
    advantage: ``obs_dim + 5`` numbers a step) and their graph (about as much again); a held-out
    evaluation, the same for ``meta_batch_size`` tasks at a time.

    Raises:
        ValueError / TypeError: naming the keys (``[env] kwargs``, ``[maml] ...``) and the estimate.
    """
    import math

    from mandril_envs.env_settings import make_env
    from mandril_envs.sizes import check_fits

    env = make_env(config.env.id, config.env.kwargs, "[env] kwargs")
    base = env.unwrapped
    horizon = int(base.horizon)
    width = int(math.prod(env.observation_space.shape or (1,))) + 5
    m = config.maml
    episodes = (m.num_steps + 1) * m.meta_batch_size * max(m.fast_batch_size, config.test.budget, config.test.n_episodes)
    check_fits(2 * 8 * episodes * horizon * width,
               f"[env] horizon={horizon}, [maml] num_steps={m.num_steps}, meta_batch_size={m.meta_batch_size}, fast_batch_size={m.fast_batch_size}: "
               f"one meta-iteration's episodes ({episodes:,} of {horizon:,} steps)")


def config_to_dict(config: Config) -> dict:
    """The config as plain data (round-trips through :func:`config_from_dict`)."""
    return dataclass_to_dict(config)


def load_config(path: Union[str, Path]) -> Config:
    """Read a TOML config file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the TOML is malformed or a value is out of range / a key unknown.
        TypeError: if a value has the wrong type.
    """
    return config_from_dict(load_toml(path))
