"""MandRIL: meta-inverse RL (Xu, Ratner, Dragan, Levine, Finn, ICML 2019).

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
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from mandril.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mandril.functional import NonFiniteLossError, Params, adapt
from mandril.irl_data import MetaBatch, TaskSource, make_batch
from mandril.planning import TaskBatch, maxent_nll
from mandril_envs.model import TabularModel

__all__ = ["MandRILConfig", "MandRIL", "CheckpointError", "batched_rewards"]

PathLike = Union[str, os.PathLike]

#: The kind of MandRIL checkpoints in the one checkpoint format (:mod:`mandril.core.checkpoint`).
CHECKPOINT_KIND = "mandril.MandRIL"


@dataclass
class MandRILConfig:
    """MandRIL's settings.

    Attributes:
        inner_lr: ``alpha``, the inner (adaptation) step size.
        inner_steps: gradient steps in the inner loop during meta-training.
        adapt_steps: gradient steps when adapting to a new task (the paper saw gains up to 20).
        meta_batch_size: tasks per meta-iteration (``B``).
        n_train_demos: ``K``, demos of the inner (training) set.
        n_test_demos: ``K'``, demos of the outer (test) set.
        meta_lr: Adam step size of the meta-optimizer.
        first_order: drop the second-order term of the meta-gradient.
        learn_inner_lr: learn a per-parameter inner learning rate (Meta-SGD).
        temperature: temperature of the MaxEnt likelihood (1: Ziebart's).
        condition_on_start: compute ``E[mu]`` (and ``log Z``) from the demos' own first states rather
            than the model's ``initial_state_dist``: the likelihood of the demos' actions given where
            they started. With one or two demos, the mismatch between ``p0`` and where they started
            otherwise dominates the gradient. ``False`` gives the textbook ``log Z = sum_s p0(s) V_0(s)``.
        dtype: ``"float64"`` (default) or ``"float32"``.
        seed: seeds the task/demo draws of meta-training.
    """

    inner_lr: float = 0.03
    inner_steps: int = 1
    adapt_steps: int = 1
    meta_batch_size: int = 16
    n_train_demos: int = 2
    n_test_demos: int = 10
    meta_lr: float = 3e-3
    first_order: bool = False
    learn_inner_lr: bool = False
    temperature: float = 1.0
    condition_on_start: bool = True
    dtype: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("inner_lr", "meta_lr", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name, minimum in (("inner_steps", 0), ("adapt_steps", 0), ("meta_batch_size", 1), ("n_train_demos", 1), ("n_test_demos", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype."""
        return torch.float64 if self.dtype == "float64" else torch.float32


def batched_rewards(reward_model: nn.Module, params: Params, inputs: Tensor) -> Tensor:
    """``(B, S)`` rewards of ``B`` tasks, task ``b`` with its own parameters ``params[k][b]``.

    Args:
        reward_model: maps a batch of inputs ``(n, ...)`` to rewards ``(n, S)`` (or ``(n, S, A)``).
        params: every parameter with a leading batch axis ``B``.
        inputs: ``(B, ...)``.
    """

    def one(task_params: Params, task_input: Tensor) -> Tensor:
        return functional_call(reward_model, task_params, (task_input.unsqueeze(0),)).squeeze(0)

    return vmap(one)(params, inputs)


@dataclass
class _History:
    rows: list[dict] = field(default_factory=list)


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
        self.config = MandRILConfig(**{**asdict(base), **overrides}) if overrides else base
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
        if not torch.isfinite(rewards).all():
            raise NonFiniteLossError(f"the reward model's output is not finite (inner_lr = {self.config.inner_lr} is probably too large)")
        visitation = batch.train_visitation if split == "train" else batch.test_visitation
        tasks = (batch.train_tasks if split == "train" else batch.test_tasks) if self.config.condition_on_start else batch.tasks
        return maxent_nll(tasks, rewards, visitation, self.config.temperature)

    @staticmethod
    def _check_reward_shape(rewards: Tensor, tasks: TaskBatch) -> None:
        allowed = [(tasks.batch_size, tasks.n_states), (tasks.batch_size, tasks.n_states, tasks.n_actions)]
        if tuple(rewards.shape) not in allowed:
            raise ValueError(
                f"reward model output shape {tuple(rewards.shape)[1:]} per task does not fit the task: "
                f"want (S,) = ({tasks.n_states},) or (S, A) = ({tasks.n_states}, {tasks.n_actions})"
            )

    def _expanded_theta(self, batch_size: int) -> Params:
        return {k: v.unsqueeze(0).expand(batch_size, *v.shape) for k, v in self.theta.items()}

    def inner_adapt(self, batch: MetaBatch, steps: int, *, create_graph: bool) -> tuple[Params, list[float]]:
        """Per-task adapted parameters ``phi (B, ...)`` after ``steps`` inner steps on the train demos."""
        loss_fn: Callable[[Params], Tensor] = lambda params: self._task_losses(params, batch, "train").sum()  # noqa: E731
        return adapt(loss_fn, self._expanded_theta(batch.tasks.batch_size), self.inner_lr, steps, first_order=not create_graph)

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
        batch = source.sample(c.meta_batch_size, c.n_train_demos, c.n_test_demos, self.rng)
        try:
            outer, inner = self.meta_loss(batch)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(f"meta-iteration {self.iteration}: {error}") from None
        if not torch.isfinite(outer):
            raise NonFiniteLossError(f"meta-iteration {self.iteration}: the outer loss is {float(outer)}: lower inner_lr (now {c.inner_lr}) or meta_lr")
        self.optimizer.zero_grad(set_to_none=True)
        outer.backward()
        for name, value in self.theta.items():
            if value.grad is not None and not torch.isfinite(value.grad).all():
                raise NonFiniteLossError(f"meta-iteration {self.iteration}: the meta-gradient of {name!r} is not finite")
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
    ) -> list[dict]:
        """Meta-train until ``self.iteration == iterations`` (so a resumed trainer continues where it stopped).

        Args:
            source: where meta-batches come from (:mod:`mandril.irl_data`).
            iterations: the total number of meta-iterations.
            log_dir: if given, ``metrics.csv`` (and TensorBoard events, if installed and
                ``tensorboard``) are written there, and checkpoints as ``checkpoint.pt``.
            checkpoint_every: write a checkpoint every N iterations (and at the end) when ``log_dir`` is set.
            progress: show a tqdm progress bar with the meta-loss.

        Returns:
            The log rows of the iterations run by this call (per-step losses are per time step:
            the MaxEnt NLL divided by ``H``).
        """
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations must be an int >= 0, got {iterations!r}")
        from tqdm.auto import tqdm

        log_path = Path(log_dir) if log_dir is not None else None
        if log_path is not None:
            _truncate_csv(log_path / "metrics.csv", self.iteration)
        writer = _tensorboard_writer(log_path) if (log_path is not None and tensorboard) else None
        rows = []
        bar = tqdm(total=iterations, initial=self.iteration, desc="MandRIL meta-train", disable=not progress, unit="it")
        try:
            while self.iteration < iterations:
                row = self.meta_step(source)
                rows.append(row)
                bar.update(1)
                postfix = {"meta_loss": f"{row['outer_loss']:.4f}"}
                if math.isfinite(row["inner_loss"]):  # no inner loss when pre-training (inner_steps = 0)
                    postfix["inner"] = f"{row['inner_loss']:.4f}"
                bar.set_postfix(postfix)
                if log_path is not None:
                    _append_csv(log_path / "metrics.csv", row)
                    if writer is not None:
                        writer.add_scalar("meta/outer_loss", row["outer_loss"], row["iteration"])
                        writer.add_scalar("meta/inner_loss", row["inner_loss"], row["iteration"])
                    if checkpoint_every and (self.iteration % checkpoint_every == 0 or self.iteration == iterations):
                        self.save_checkpoint(log_path / "checkpoint.pt")
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return rows

    # --- adaptation --------------------------------------------------------------------------
    def adapt(self, model: TabularModel, inputs: np.ndarray, states: np.ndarray, actions: np.ndarray, steps: Optional[int] = None) -> np.ndarray:
        """Adapt ``theta`` to one new task from its demos and return the reward table.

        Args:
            model: the new task's dynamics.
            inputs: its reward-model input (:func:`mandril.irl_data.task_inputs`).
            states, actions: its demos, ``(n, H+1)`` and ``(n, H)``.
            steps: gradient steps (default ``config.adapt_steps``).

        Returns:
            ``(S,)`` (or ``(S, A)``) float64 reward table.
        """
        steps = self.config.adapt_steps if steps is None else steps
        state_action = self._is_state_action(model, inputs)
        batch = make_batch([model], [inputs], [(states, actions)], None, state_action, self.config.torch_dtype)
        phi, _ = self.inner_adapt(batch, steps, create_graph=False)
        with torch.no_grad():
            reward = batched_rewards(self.reward_model, phi, batch.inputs)[0]
        return reward.detach().to(torch.float64).numpy()

    def _is_state_action(self, model: TabularModel, inputs: np.ndarray) -> bool:
        with torch.no_grad():
            out = self.reward_model(torch.as_tensor(np.array(inputs)[None], dtype=self.config.torch_dtype))
        if tuple(out.shape[1:]) == (model.state_dim,):
            return False
        if tuple(out.shape[1:]) == (model.state_dim, model.action_dim):
            return True
        raise ValueError(f"reward model output shape {tuple(out.shape[1:])} does not fit the task: want ({model.state_dim},) or {(model.state_dim, model.action_dim)}")

    def prior_reward(self, model: TabularModel, inputs: np.ndarray) -> np.ndarray:
        """The reward table of ``theta`` itself (no adaptation)."""
        with torch.no_grad():
            out = self.reward_model(torch.as_tensor(np.array(inputs)[None], dtype=self.config.torch_dtype))[0]
        return out.to(torch.float64).numpy()

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

    def save_checkpoint(self, path: PathLike) -> Path:
        """Write :meth:`state_dict` atomically in the one checkpoint format (:mod:`mandril.core.checkpoint`)."""
        return save_checkpoint(path, CHECKPOINT_KIND, self.state_dict())

    def load_checkpoint(self, path: PathLike) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` into this trainer (same model architecture).

        Raises:
            FileNotFoundError: no such file.
            CheckpointError: the file is damaged (checksum), unsafe (needs pickle code), of another kind, or
                does not fit the reward model.
        """
        path = Path(path)
        state = load_checkpoint(path, CHECKPOINT_KIND)
        missing = [k for k in ("config", "iteration", "model", "inner_lr", "optimizer", "rng", "history") if k not in state]
        if missing:
            raise CheckpointError(f"{path}: checkpoint is missing {missing}")
        try:
            self.reward_model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise CheckpointError(f"{path}: the checkpoint's parameters do not fit this reward model: {error}") from None
        config_names = {f.name for f in fields(MandRILConfig)}
        self.config = MandRILConfig(**{k: v for k, v in state["config"].items() if k in config_names})
        if isinstance(self.inner_lr, dict):
            if not isinstance(state["inner_lr"], dict):
                raise CheckpointError(f"{path}: the checkpoint has no learned inner learning rates")
            with torch.no_grad():
                for k, v in self.inner_lr.items():
                    v.copy_(state["inner_lr"][k])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as error:
            raise CheckpointError(f"{path}: the optimizer state does not fit: {error}") from None
        self.rng.bit_generator.state = state["rng"]
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


def _tensorboard_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir / "tensorboard"))
