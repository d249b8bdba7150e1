"""The MandRIL trainer: meta-inverse RL (Xu, Ratner, Dragan, Levine, Finn, ICML 2019).

Meta-learn the initial parameters ``theta`` of a reward model so that a few MaxEnt-IRL gradient
steps on a handful of demos of a new task give a good reward.

For a meta-batch of ``B`` tasks, each with a training set ``D_tr`` of ``K`` demos and a disjoint
test set ``D_te`` of ``K'`` demos:

* inner step (per task, shared code with MAML-RL: :func:`mandril.functional.adapt`):
  ``phi_b = theta - alpha * grad_theta L(r_theta(x_b); D_tr_b)``, where ``L`` is the MaxEnt NLL of
  :func:`mandril.planning.maxent_nll`, so ``dL/dr = E[mu] - mu_D`` pushed through the model;
* outer loss: ``(1/B) sum_b L(r_{phi_b}(x_b); D_te_b)``, differentiated through the inner step
  (second order: it includes ``d E[mu] / d r``, the kernel's exact Hessian-vector product), or
  with ``first_order=True`` treating the inner gradient as a constant;
* Adam on ``theta`` (and, with ``learn_inner_lr``, on a per-parameter inner learning rate: Meta-SGD).

The ``B`` tasks run through the batched kernel in one call: each task gets its own copy of the
parameters (``theta`` expanded along a batch axis) and the reward model runs under
``torch.func.vmap``, so one backward pass gives every task's own inner gradient.

With ``inner_steps = 0`` the same loop pre-trains: the outer loss is taken at ``theta`` itself
(pre-train + fine-tune; the demo-conditioned baseline, whose inputs carry the demos). The methods
behind the one interface (:mod:`mandril.methods`) are built on this trainer.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from mandril.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mandril.core.config import check_at_most, check_ints, check_numbers
from mandril.data.batch import MetaBatch, check_likelihood, make_batch
from mandril.data.sources import TaskSource
from mandril.functional import NonFiniteLossError, Params, adapt
from mandril.methods.base import DivergenceError
from mandril.planning import TaskBatch, maxent_nll
from mandril.rewards.batched import batched_rewards, expand_params
from mandril_envs.model import TabularModel

__all__ = ["MandRILConfig", "MandRIL", "CheckpointError", "CHECKPOINT_KIND"]

PathLike = Union[str, os.PathLike]

#: The most inner steps of meta-training (each keeps its autograd graph until the meta-gradient) and
#: of adaptation (each a full plan of every task): beyond them a run fills memory or never ends.
MAX_INNER_STEPS = 100
MAX_ADAPT_STEPS = 10_000

#: The kind of MandRIL checkpoints in the one checkpoint format (:mod:`mandril.core.checkpoint`).
CHECKPOINT_KIND = "mandril.MandRIL"


@dataclass(frozen=True)
class MandRILConfig:
    """MandRIL's settings.

    Attributes:
        inner_lr: ``alpha``, the inner (adaptation) step size.
        inner_steps: gradient steps in the inner loop during meta-training.
        adapt_steps: gradient steps when adapting to a new task (the paper saw gains up to 20).
        meta_batch_size: tasks per meta-iteration (``B``).
        n_train_demos: ``K``, demos of the inner (training) set.
        n_train_demos_choices: if given, each meta-iteration draws its ``K`` from these (one ``K`` for
            the whole meta-batch) instead of using ``n_train_demos``: the initialisation (and Meta-SGD's
            rates) are then meta-learned for adapting to every number of demos among them, not to one
            ``K``. The mean-NLL gradient of ``K`` demos is an average whose spikes shrink as ``K`` grows,
            so steps calibrated on ``K = 2`` move too little with 16 demos.
        n_test_demos: ``K'``, demos of the outer (test) set.
        meta_lr: Adam step size of the meta-optimizer.
        first_order: drop the second-order term of the meta-gradient.
        learn_inner_lr: learn a per-parameter inner learning rate (Meta-SGD).
        temperature: temperature of the MaxEnt likelihood (1: Ziebart's).
        likelihood: ``"start"`` (default): ``E[mu]`` and ``log Z`` from the demos' own first states,
            the likelihood of the demos' actions given where they started; ``"p0"``: the textbook
            ``log Z = sum_s p0(s) V_0(s)`` (see :mod:`mandril.data.batch`). Used by the inner steps,
            the outer loss and the adaptation alike.
        max_abs_reward: a meta-iteration whose rewards reach this magnitude, or whose per-step loss
            exceeds it, has diverged: training stops with an error naming the iteration and the rates.
        dtype: ``"float64"`` (default) or ``"float32"``.
        seed: seeds the task/demo draws of meta-training.
    """

    inner_lr: float = 0.03
    inner_steps: int = 1
    adapt_steps: int = 1
    meta_batch_size: int = 16
    n_train_demos: int = 2
    n_train_demos_choices: tuple[int, ...] = ()
    n_test_demos: int = 10
    meta_lr: float = 3e-3
    first_order: bool = False
    learn_inner_lr: bool = False
    temperature: float = 1.0
    likelihood: str = "start"
    max_abs_reward: float = 1e4
    dtype: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        check_numbers(self, positive=("inner_lr", "meta_lr", "temperature", "max_abs_reward"))
        check_at_most(self, "each inner step keeps its graph for the meta-gradient: memory grows with them", inner_steps=MAX_INNER_STEPS)
        check_at_most(self, "the paper saw gains up to 20", adapt_steps=MAX_ADAPT_STEPS)
        check_ints(self, inner_steps=0, adapt_steps=0, meta_batch_size=1, n_train_demos=1, n_test_demos=1, seed=0)
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        check_likelihood(self.likelihood)
        choices = self.n_train_demos_choices
        if isinstance(choices, list):
            object.__setattr__(self, "n_train_demos_choices", choices := tuple(choices))
        if not isinstance(choices, tuple) or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in choices) or len(set(choices)) != len(choices):
            raise ValueError(f"n_train_demos_choices must be distinct ints >= 1 (or empty: always n_train_demos), got {choices!r}")

    @property
    def most_train_demos(self) -> int:
        """The largest ``K`` a meta-iteration draws."""
        return max(self.n_train_demos_choices) if self.n_train_demos_choices else self.n_train_demos

    def draw_train_demos(self, rng: np.random.Generator) -> int:
        """This meta-iteration's ``K`` (``n_train_demos``, or one of ``n_train_demos_choices`` drawn with ``rng``)."""
        if not self.n_train_demos_choices:
            return self.n_train_demos
        return int(self.n_train_demos_choices[int(rng.integers(len(self.n_train_demos_choices)))])

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype."""
        return torch.float64 if self.dtype == "float64" else torch.float32


class MandRIL:
    """The MandRIL trainer.

    Args:
        reward_model: a ``torch.nn.Module`` mapping a batch of task inputs ``(n, ...)`` to reward
            tables ``(n, S)`` (state rewards) or ``(n, S, A)``; it must work with
            ``torch.func.functional_call`` and ``vmap`` (no batch norm). Its parameters are ``theta``.
        config: :class:`MandRILConfig` (or keyword overrides of it).
    """

    def __init__(self, reward_model: nn.Module, config: Optional[MandRILConfig] = None, **overrides: Any) -> None:
        if not isinstance(reward_model, nn.Module):
            raise TypeError(f"reward_model must be a torch.nn.Module, got {type(reward_model).__name__}")
        base = config if config is not None else MandRILConfig()
        self.config = replace(base, **overrides) if overrides else base
        self.reward_model = reward_model.to(self.config.torch_dtype)
        self.theta: Params = dict(self.reward_model.named_parameters())
        if not self.theta:
            raise ValueError("reward_model has no parameters to meta-learn")
        self.inner_lr: Union[float, dict[str, Tensor]] = self.config.inner_lr
        meta_parameters = list(self.theta.values())
        if self.config.learn_inner_lr:
            self.inner_lr = {k: torch.full_like(v, self.config.inner_lr, requires_grad=True) for k, v in self.theta.items()}
            meta_parameters += list(self.inner_lr.values())
        self.optimizer = torch.optim.Adam(meta_parameters, lr=self.config.meta_lr)
        self.rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 0x3A7D]))
        self.iteration = 0
        self.history: list[dict] = []

    # --- losses ----------------------------------------------------------------------------
    def _task_losses(self, params: Params, batch: MetaBatch, split: str) -> Tensor:
        rewards = batched_rewards(self.reward_model, params, batch.inputs)
        self._check_reward_shape(rewards, batch.tasks)
        biggest = float(rewards.detach().abs().max())
        if not math.isfinite(biggest) or biggest > self.config.max_abs_reward:
            raise NonFiniteLossError(
                f"the rewards reached {biggest:.4g} (limit max_abs_reward = {self.config.max_abs_reward:g}): "
                f"inner_lr = {self.config.inner_lr:g} or meta_lr = {self.config.meta_lr:g} is probably too large"
            )
        tasks = batch.likelihood_tasks(split, self.config.likelihood)
        return maxent_nll(tasks, rewards, batch.visitation(split), self.config.temperature)

    @staticmethod
    def _check_reward_shape(rewards: Tensor, tasks: TaskBatch) -> None:
        allowed = [(tasks.batch_size, tasks.n_states), (tasks.batch_size, tasks.n_states, tasks.n_actions)]
        if tuple(rewards.shape) not in allowed:
            raise ValueError(
                f"reward model output shape {tuple(rewards.shape)[1:]} per task does not fit the task: "
                f"want (S,) = ({tasks.n_states},) or (S, A) = ({tasks.n_states}, {tasks.n_actions})"
            )

    def inner_adapt(self, batch: MetaBatch, steps: int, *, create_graph: bool, lr_scale: float = 1.0) -> tuple[Params, list[float]]:
        """Per-task adapted parameters ``phi (B, ...)`` after ``steps`` inner steps on the train demos.

        ``lr_scale`` multiplies the inner learning rate (a float, or Meta-SGD's learned per-parameter rates).
        """
        loss_fn: Callable[[Params], Tensor] = lambda params: self._task_losses(params, batch, "train").sum()  # noqa: E731
        lr: Union[float, dict[str, Tensor]] = self.inner_lr
        if lr_scale != 1.0:
            lr = {k: v * lr_scale for k, v in lr.items()} if isinstance(lr, dict) else lr * lr_scale
        return adapt(loss_fn, expand_params(self.theta, batch.tasks.batch_size), lr, steps, first_order=not create_graph)

    def meta_loss(self, batch: MetaBatch) -> tuple[Tensor, float]:
        """``(outer loss, mean inner loss before adapting)`` of one meta-batch (outer loss is differentiable in theta)."""
        if batch.test_visitation is None:
            raise ValueError("a meta-batch needs test demos (n_test_demos >= 1) for the outer loss")
        phi, inner_losses = self.inner_adapt(batch, self.config.inner_steps, create_graph=not self.config.first_order)
        outer = self._task_losses(phi, batch, "test").mean()
        inner = inner_losses[0] / batch.tasks.batch_size if inner_losses else float("nan")
        return outer, inner

    # --- meta-training -----------------------------------------------------------------------
    def meta_step(self, source: TaskSource) -> dict:
        """One meta-iteration: draw a meta-batch, adapt, step the meta-optimizer. Returns its log row."""
        start = time.perf_counter()
        c = self.config
        batch = source.sample(c.meta_batch_size, c.draw_train_demos(self.rng), c.n_test_demos, self.rng)
        try:
            outer, inner = self.meta_loss(batch)
        except NonFiniteLossError as error:
            raise DivergenceError(f"MandRIL meta-iteration {self.iteration}: {error}") from None
        per_step = float(outer.detach()) / batch.tasks.horizon
        if not math.isfinite(per_step) or abs(per_step) > c.max_abs_reward:
            raise DivergenceError(
                f"MandRIL meta-iteration {self.iteration}: the outer loss per step is {per_step:.4g}: training diverged; "
                f"lower inner_lr (now {c.inner_lr:g}) or meta_lr (now {c.meta_lr:g})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        outer.backward()
        for name, value in self.theta.items():
            if value.grad is not None and not torch.isfinite(value.grad).all():
                raise DivergenceError(f"MandRIL meta-iteration {self.iteration}: the meta-gradient of {name!r} is not finite (meta_lr = {c.meta_lr:g}, inner_lr = {c.inner_lr:g})")
        self.optimizer.step()
        row = {"iteration": self.iteration, "outer_loss": float(outer.detach()) / batch.tasks.horizon, "inner_loss": inner / batch.tasks.horizon, "seconds": time.perf_counter() - start}
        self.iteration += 1
        self.history.append(row)
        return row

    def meta_train(
        self,
        source: TaskSource,
        iterations: int,
        *,
        log_dir: Optional[PathLike] = None,
        checkpoint_every: int = 0,
        progress: bool = True,
        tensorboard: bool = True,
        desc: str = "MandRIL meta-training",
        checkpoint_path: Optional[PathLike] = None,
        checkpoint_metadata: Optional[Mapping[str, Any]] = None,
    ) -> list[dict]:
        """Meta-train until ``self.iteration == iterations`` (so a resumed trainer continues where it stopped).

        Args:
            source: where meta-batches come from (:mod:`mandril.data.sources`).
            iterations: the total number of meta-iterations.
            log_dir: if given, ``metrics.csv`` (and TensorBoard events, if installed and
                ``tensorboard``) are written there, and checkpoints as ``checkpoint.pt``.
            checkpoint_every: write a checkpoint every N iterations (and at the end) when ``log_dir`` is set.
            progress: show a tqdm progress bar with the loss.
            desc: the progress bar's label (e.g. ``"pre-training"``).
            checkpoint_path: where checkpoints go (default ``log_dir / "checkpoint.pt"``); with it,
                checkpoints are written without ``log_dir``.
            checkpoint_metadata: whom the checkpoints belong to (see :func:`mandril.core.checkpoint.save_checkpoint`).

        Returns:
            The log rows of the iterations run by this call (per-step losses are per time step:
            the MaxEnt NLL divided by ``H``).
        """
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations must be an int >= 0, got {iterations!r}")
        from tqdm.auto import tqdm

        log_path = Path(log_dir) if log_dir is not None else None
        if checkpoint_path is None and log_path is not None:
            checkpoint_path = log_path / "checkpoint.pt"
        if log_path is not None:
            _truncate_csv(log_path / "metrics.csv", self.iteration)
        writer = _tensorboard_writer(log_path, self.iteration) if (log_path is not None and tensorboard) else None
        rows = []
        bar = tqdm(total=iterations, initial=self.iteration, desc=desc, disable=not progress, unit="it")
        try:
            while self.iteration < iterations:
                row = self.meta_step(source)
                rows.append(row)
                bar.update(1)
                postfix = {"loss": f"{row['outer_loss']:.4f}"}
                if math.isfinite(row["inner_loss"]):  # no inner loss when pre-training (inner_steps = 0)
                    postfix["inner"] = f"{row['inner_loss']:.4f}"
                bar.set_postfix(postfix)
                if log_path is not None:
                    _append_csv(log_path / "metrics.csv", row)
                    if writer is not None:
                        writer.add_scalar("meta/outer_loss", row["outer_loss"], row["iteration"])
                        writer.add_scalar("meta/inner_loss", row["inner_loss"], row["iteration"])
                if checkpoint_path is not None and checkpoint_every and (self.iteration % checkpoint_every == 0 or self.iteration == iterations):
                    self.save_checkpoint(checkpoint_path, checkpoint_metadata)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return rows

    # --- adaptation --------------------------------------------------------------------------
    def adapt(
        self, model: TabularModel, inputs: np.ndarray, states: np.ndarray, actions: np.ndarray, steps: Optional[int] = None, lr_scale: float = 1.0
    ) -> np.ndarray:
        """Adapt ``theta`` to one new task from its demos and return the reward table.

        Args:
            model: the new task's dynamics.
            inputs: its reward-model input (:func:`mandril.data.task_inputs`).
            states, actions: its demos, ``(n, H+1)`` and ``(n, H)``.
            steps: gradient steps (default ``config.adapt_steps``).
            lr_scale: multiplies the inner learning rate.

        Returns:
            ``(S,)`` (or ``(S, A)``) float64 reward table.
        """
        steps = self.config.adapt_steps if steps is None else steps
        state_action = self._is_state_action(model, inputs)
        batch = make_batch([model], [inputs], [(states, actions)], None, state_action, self.config.torch_dtype, self._device)
        return self.adapt_batch(batch, steps, lr_scale)[0]

    def adapt_batch(self, batch: MetaBatch, steps: int, lr_scale: float = 1.0) -> np.ndarray:
        """Adapt ``theta`` to every task of ``batch`` from its train demos: ``(B, S)`` (or ``(B, S, A)``) rewards, float64."""
        phi, _ = self.inner_adapt(batch, steps, create_graph=False, lr_scale=lr_scale)
        with torch.no_grad():
            rewards = batched_rewards(self.reward_model, phi, batch.inputs)
        return rewards.detach().to(torch.float64).cpu().numpy()

    def _is_state_action(self, model: TabularModel, inputs: np.ndarray) -> bool:
        with torch.no_grad():
            out = self.reward_model(torch.as_tensor(np.array(inputs)[None], dtype=self.config.torch_dtype, device=self._device))
        if tuple(out.shape[1:]) == (model.state_dim,):
            return False
        if tuple(out.shape[1:]) == (model.state_dim, model.action_dim):
            return True
        raise ValueError(f"reward model output shape {tuple(out.shape[1:])} does not fit the task: want ({model.state_dim},) or {(model.state_dim, model.action_dim)}")

    def prior_reward(self, model: TabularModel, inputs: np.ndarray) -> np.ndarray:
        """The reward table of ``theta`` itself (no adaptation)."""
        with torch.no_grad():
            out = self.reward_model(torch.as_tensor(np.array(inputs)[None], dtype=self.config.torch_dtype, device=self._device))[0]
        return out.to(torch.float64).cpu().numpy()

    @property
    def _device(self) -> torch.device:
        return next(iter(self.theta.values())).device

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue bit for bit: theta, inner lr, optimizer, RNG, iteration, history."""
        return {
            "config": asdict(self.config),
            "iteration": self.iteration,
            "model": {k: v.detach().clone() for k, v in self.reward_model.state_dict().items()},
            "inner_lr": {k: v.detach().clone() for k, v in self.inner_lr.items()} if isinstance(self.inner_lr, dict) else self.inner_lr,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng": self.rng.bit_generator.state,
            "history": list(self.history),
        }

    def save_checkpoint(self, path: PathLike, metadata: Optional[Mapping[str, Any]] = None) -> Path:
        """Write :meth:`state_dict` atomically in the one checkpoint format (:mod:`mandril.core.checkpoint`),
        with ``metadata`` saying whom it belongs to."""
        return save_checkpoint(path, CHECKPOINT_KIND, self.state_dict(), metadata)

    def load_checkpoint(self, path: PathLike, metadata: Optional[Mapping[str, Any]] = None) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` into this trainer (same model architecture);
        with ``metadata``, only one written with that metadata.

        Raises:
            FileNotFoundError: no such file.
            CheckpointError: the file is damaged (checksum), unsafe (needs pickle code), of another kind, or
                does not fit the reward model.
        """
        path = Path(path)
        self.load_state(load_checkpoint(path, CHECKPOINT_KIND, metadata), str(path))

    def load_state(self, state: dict, where: str = "state") -> None:
        """Restore :meth:`state_dict` (as read from a checkpoint); errors name ``where``."""
        missing = [k for k in ("config", "iteration", "model", "inner_lr", "optimizer", "rng", "history") if k not in state]
        if missing:
            raise CheckpointError(f"{where}: checkpoint is missing {missing}")
        try:
            self.reward_model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise CheckpointError(f"{where}: the checkpoint's parameters do not fit this reward model: {error}") from None
        config_names = {f.name for f in fields(MandRILConfig)}
        try:
            self.config = MandRILConfig(**{k: v for k, v in dict(state["config"]).items() if k in config_names})
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: the checkpoint's config is invalid: {error}") from None
        if isinstance(self.inner_lr, dict):
            if not isinstance(state["inner_lr"], dict):
                raise CheckpointError(f"{where}: the checkpoint has no learned inner learning rates")
            with torch.no_grad():
                for k, v in self.inner_lr.items():
                    v.copy_(state["inner_lr"][k])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.rng.bit_generator.state = state["rng"]
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{where}: the optimizer or generator state does not fit: {error}") from None
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])


def _append_csv(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_csv(path: Path, iteration: int) -> None:
    """Keep only the rows of iterations before ``iteration`` (a resumed run rewrites what came after its checkpoint)."""
    if not path.exists():
        return
    with path.open(newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if int(row["iteration"]) < iteration]
    path.unlink()
    for row in rows:
        _append_csv(path, row)


def _tensorboard_writer(log_dir: Path, first_iteration: int) -> Any:
    """A TensorBoard writer whose events from ``first_iteration`` on are purged (a resumed run rewrites them)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir / "tensorboard"), purge_step=first_iteration if first_iteration > 0 else None)
