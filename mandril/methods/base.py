"""The one interface every method implements, its output, and its errors.

A method learns, from ``n`` demos of one task whose dynamics are known, either a reward table or a
policy table; the harness scores both the same way (:func:`mandril.eval.score`).

* ``method.prepare(source)``: whatever the method learns from the training tasks before it sees a
  new one (meta-training, pre-training, training a demo-conditioned network); a no-op for
  single-task methods. Its result is :meth:`Method.state_dict` (plain data and tensors, written in
  the one checkpoint format), so the harness trains once and reuses it.
* ``method.fit(model, inputs, states, actions, seed=...)``: one new task -> :class:`MethodOutput`.
  ``model`` is the task's :class:`~mandril_envs.model.TabularModel`; a method may use its dynamics,
  ``initial_state_dist`` and horizon, never its ``reward_matrix`` (the harness hands methods a model
  whose reward is zeroed, so it cannot leak). ``inputs`` is the task as the method's reward model
  reads it (``env.unwrapped.reward_input(method.input_kind)``); ``states (n, H+1)``, ``actions (n, H)``
  are the demos.
* ``method.fit_batch(problems)``: many tasks at once. Methods whose fits run through the batched
  planning kernel (``batched = True``) do them in one call; the default loops over :meth:`Method.fit`.
  A task whose fit fails gets a :class:`FitError` in its place; the others are unaffected.

Every method has a dataclass config (``Method.Config``): documented fields, types checked, ranges
checked, unknown keys refused naming the key (:func:`mandril.core.build_dataclass`).
"""

from __future__ import annotations

import time
from abc import ABC
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

import numpy as np

from mandril.core.config import build_dataclass, dataclass_to_dict
from mandril_envs.model import TabularModel

__all__ = [
    "Method",
    "MethodOutput",
    "FitProblem",
    "FitError",
    "DivergenceError",
    "NotPreparedError",
    "hide_reward",
    "check_problem",
    "METHOD_KINDS",
]

#: What a method is, for reports: learns a reward from one task, meta-learns over tasks, imitates,
#: or is a reference point (the expert, no information).
METHOD_KINDS = ("irl", "meta-irl", "imitation", "reference")


class FitError(RuntimeError):
    """A fit failed on one task; the message names the method, the task and why."""


class DivergenceError(FitError, FloatingPointError):
    """An optimisation diverged or exploded (loss or reward non-finite or huge); the message names the
    method, the task or iteration, and the learning rate."""


class NotPreparedError(RuntimeError):
    """``fit`` was called on a method that must be prepared on training tasks first."""


@dataclass(frozen=True)
class MethodOutput:
    """What a method learned for one task.

    Attributes:
        reward: ``(S,)`` or ``(S, A)`` float64 reward table, or ``None``.
        policy: ``(H, S, A)`` float64 time-indexed policy (rows sum to 1), or ``None``.
        info: JSON-serialisable diagnostics (steps taken, why the fit stopped and whether it
            converged, final gradient norm and loss...). At least one of ``reward`` and ``policy`` is set.
    """

    reward: Optional[np.ndarray] = None
    policy: Optional[np.ndarray] = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reward is None and self.policy is None:
            raise ValueError("a MethodOutput needs a reward table or a policy table, got neither")
        if self.reward is not None:
            reward = np.asarray(self.reward, dtype=np.float64)
            if reward.ndim not in (1, 2):
                raise ValueError(f"reward must be (S,) or (S, A), got shape {reward.shape}")
            object.__setattr__(self, "reward", reward)
        if self.policy is not None:
            policy = np.asarray(self.policy, dtype=np.float64)
            if policy.ndim != 3:
                raise ValueError(f"policy must be (H, S, A), got shape {policy.shape}")
            object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "info", dict(self.info))


@dataclass(frozen=True)
class FitProblem:
    """One task to fit, as :meth:`Method.fit_batch` takes it.

    Attributes:
        model: the task's dynamics (reward hidden: see :func:`hide_reward`).
        inputs: what the method's reward model reads of the task.
        states, actions: the demos, ``(n, H+1)`` and ``(n, H)``.
        seed: seeds whatever the fit draws at random (initialisation, rollouts).
        label: how errors name the task, e.g. ``"test/12"``.
        prior: the family's prior over this task's reward (``env.unwrapped.reward_prior()``, a
            :mod:`mandril_envs.priors` object), for methods that read it (``reads_reward_prior``: the
            ``bayes`` reference); ``None`` otherwise.
    """

    model: TabularModel
    inputs: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    seed: int = 0
    label: str = "task"
    prior: Any = None


def hide_reward(model: TabularModel) -> TabularModel:
    """The same dynamics with an all-zero reward of the same shape: what a method is allowed to see."""
    return model.with_reward(np.zeros_like(model.reward_matrix))


def check_problem(problem: FitProblem, where: str = "problem") -> FitProblem:
    """``problem`` with its demos checked and made int64 (a ValueError/TypeError naming what is wrong)."""
    if not isinstance(problem, FitProblem):
        raise TypeError(f"{where} must be a FitProblem, got {type(problem).__name__}")
    if not isinstance(problem.model, TabularModel):
        raise TypeError(f"{where}.model must be a mandril_envs TabularModel, got {type(problem.model).__name__}")
    states, actions = _check_demos(problem.model, problem.states, problem.actions)
    inputs = np.asarray(problem.inputs)
    if not np.issubdtype(inputs.dtype, np.number) or not np.all(np.isfinite(inputs)):
        raise ValueError(f"{where}.inputs (the task's reward-model input, shape {inputs.shape}) must be finite numbers: it holds NaN or inf")
    return replace(problem, states=states, actions=actions)


def _check_demos(model: TabularModel, states: Any, actions: Any) -> tuple[np.ndarray, np.ndarray]:
    states, actions = np.asarray(states), np.asarray(actions)
    horizon = model.horizon
    if states.ndim != 2 or actions.ndim != 2 or states.shape[0] != actions.shape[0] or states.shape[1] != horizon + 1 or actions.shape[1] != horizon:
        raise ValueError(f"demos must be states (n, H+1) and actions (n, H) with H = {horizon}, got {states.shape} and {actions.shape}")
    if states.shape[0] < 1:
        raise ValueError("at least one demo is needed, got 0")
    for name, array, bound in (("states", states, model.state_dim), ("actions", actions, model.action_dim)):
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"demo {name} must be integers, got dtype {array.dtype}")
        if array.min() < 0 or array.max() >= bound:
            raise ValueError(f"demo {name} must lie in [0, {bound}), got [{array.min()}, {array.max()}]")
    return states.astype(np.int64), actions.astype(np.int64)


class Method(ABC):
    """A learning-from-demonstrations method behind the one interface (see the module docstring).

    Subclasses set :attr:`name`, :attr:`kind`, :attr:`Config` (a frozen dataclass) and implement
    :meth:`_fit_one` (or override :meth:`fit_batch`); methods that learn from training tasks set
    :attr:`needs_preparation` and implement :meth:`_prepare`, :meth:`state_dict` and
    :meth:`load_state_dict`.

    Args:
        config: a ``Config`` instance, or ``None`` for the defaults.
        **overrides: config fields (checked like a suite file's table: unknown keys refused).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "irl"
    Config: ClassVar[type] = object
    needs_preparation: ClassVar[bool] = False
    batched: ClassVar[bool] = False
    #: What the method returns: ``"reward"`` or ``"policy"`` (or ``"reward+policy"``).
    output: ClassVar[str] = "reward"
    #: Only reference points (the expert) may read the task's true reward; the harness hands every
    #: other method the model with its reward zeroed (:func:`hide_reward`).
    reads_true_reward: ClassVar[bool] = False
    #: Whether the method reads the family's reward prior (``FitProblem.prior``, which the harness fills
    #: from ``env.unwrapped.reward_prior()`` for such methods only): the ``bayes`` reference.
    reads_reward_prior: ClassVar[bool] = False
    #: Whether the method's reward model is the family's neural model (a suite's family
    #: ``reward_model``/``input_kind`` apply to it): MandRIL, pre-train + fine-tune, demo-conditioned, maxent.
    family_reward_model: ClassVar[bool] = False
    #: Settings that only change how a prepared method fits a new task, not its preparation (so a
    #: tuning sweep over them reuses one preparation).
    fit_only_settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def per_n_settings(cls) -> tuple[str, ...]:
        """The settings a suite may choose per number of demos (its ``by_n`` tables): every setting that only
        changes how a new task is fitted. A method with no preparation: all of them but ``seed``; a prepared
        method: its :attr:`fit_only_settings` (one preparation serves every ``n``), bookkeeping excluded."""
        if not cls.needs_preparation:
            return tuple(f.name for f in fields(cls.Config) if f.name != "seed")
        return tuple(name for name in cls.fit_only_settings if name != "checkpoint_every")

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, self.Config):
            raise TypeError(f"{self.name}: config must be a {self.Config.__name__}, got {type(config).__name__}")
        if config is None:
            config = build_dataclass(self.Config, overrides, f"[{self.name}]")
        elif overrides:
            config = build_dataclass(self.Config, {**dataclass_to_dict(config), **overrides}, f"[{self.name}]")
        self.config = config
        self.prepared = not self.needs_preparation
        self.device: Any = None  # torch's default (the CPU) until .to(device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def to(self, device: Any) -> "Method":
        """Do this method's torch work on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``); returns the method.

        Raises:
            ValueError: a CUDA device when torch sees none.
        """
        import torch

        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device must be like 'cpu', 'cuda' or 'cuda:1', got {device!r}: {error}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for, but torch sees no CUDA device (torch.cuda.is_available() is False): use 'cpu'")
        self.device = device
        self._moved()
        return self

    def _moved(self) -> None:
        """Move what the method already holds to :attr:`device` (prepared models)."""

    # --- what the method reads -------------------------------------------------------------------
    @property
    def input_kind(self) -> str:
        """The task input the method reads (``config.input_kind`` when it has one, else ``"features"``)."""
        return getattr(self.config, "input_kind", "features")

    def settings(self) -> dict:
        """The config as plain data (for records and reports)."""
        return dataclass_to_dict(self.config)

    def with_settings(self, **changes: Any) -> "Method":
        """A new, unprepared method of the same type with some config fields changed."""
        return type(self)(replace(self.config, **changes)) if changes else type(self)(self.config)

    # --- training tasks ---------------------------------------------------------------------------
    def prepare(self, source: Any, *, checkpoint: Any = None, log_dir: Any = None, progress: bool = False, checkpoint_metadata: Optional[Mapping[str, Any]] = None) -> None:
        """Learn from the training tasks of ``source`` (a :class:`~mandril_envs.dataset.DemoDataset`
        or a :class:`mandril.data.DatasetSource`).

        A no-op for single-task methods. ``checkpoint`` (a path): continue from it if it exists and
        write progress to it (methods that train long). ``checkpoint_metadata``: whom that checkpoint
        belongs to (e.g. the benchmark preparation): written into it, and a checkpoint that says
        otherwise is refused (:class:`~mandril.core.checkpoint.CheckpointError`). ``log_dir``: write
        ``metrics.csv`` and TensorBoard events there.
        """
        if self.needs_preparation:
            self._prepare(source, checkpoint=checkpoint, log_dir=log_dir, progress=progress, checkpoint_metadata=checkpoint_metadata)
        self.prepared = True

    def _prepare(self, source: Any, *, checkpoint: Any, log_dir: Any, progress: bool, checkpoint_metadata: Optional[Mapping[str, Any]] = None) -> None:
        raise NotImplementedError(f"{self.name} needs preparation but does not implement _prepare")  # pragma: no cover

    def check_training(self, pool_demos: int, scored_n: Sequence[int]) -> None:
        """Refuse, before any work, a training pool or demo counts the method cannot serve (a ValueError naming
        the setting): ``pool_demos`` demos per training task, new tasks scored with ``scored_n`` demos.
        Single-task methods accept anything."""

    def state_dict(self) -> dict:
        """The prepared state as plain data and tensors (empty for single-task methods)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; the method is then prepared."""
        self.prepared = True

    # --- new tasks --------------------------------------------------------------------------------
    def fit(
        self, model: TabularModel, inputs: np.ndarray, states: np.ndarray, actions: np.ndarray, *, seed: int = 0, label: str = "task", prior: Any = None
    ) -> MethodOutput:
        """Learn a reward or a policy for one task from its demos ``states (n, H+1)``, ``actions (n, H)``
        (``prior``: the family's reward prior, for methods that read it).

        Raises:
            NotPreparedError: the method must be prepared on training tasks first.
            ValueError / TypeError: bad demos or inputs (naming the argument).
            DivergenceError: the optimisation diverged (naming the method, the task and the rate).
        """
        result = self.fit_batch([FitProblem(model, inputs, states, actions, seed, label, prior)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def fit_batch(self, problems: Sequence[FitProblem]) -> list[Union[MethodOutput, FitError]]:
        """Fit many tasks; a task whose fit fails gets its :class:`FitError` in its place."""
        problems = self._check_ready(problems)
        results: list[Union[MethodOutput, FitError]] = []
        for problem in problems:
            start = time.perf_counter()
            try:
                output = self._fit_one(problem)
            except FitError as error:
                results.append(error)
                continue
            results.append(replace(output, info={**output.info, "seconds": time.perf_counter() - start}))
        return results

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        raise NotImplementedError(f"{self.name} implements neither _fit_one nor fit_batch")  # pragma: no cover

    def _check_ready(self, problems: Sequence[FitProblem]) -> list[FitProblem]:
        """The problems, checked (demos as int64), once the method is prepared."""
        if not self.prepared:
            raise NotPreparedError(f"{self.name} must be prepared on training tasks first: call prepare(source) or load_state_dict(...)")
        return [check_problem(problem, f"problems[{i}]") for i, problem in enumerate(problems)]
