"""The MAML-TRPO training loop: metrics every batch, checkpoints, ``--resume``, progress bar.

Files in the run directory:

* ``metrics.csv``: one row per meta-iteration (pre- and post-adaptation mean episode returns over
  the meta-batch, TRPO diagnostics, env steps, wall time), rewritten atomically every batch;
* ``checkpoint.pt``: policy parameters, iteration, the RNG states (torch generator, numpy
  generator) and the config, written atomically every ``checkpoint_every`` batches and at the end;
* ``best.pt``: the same, for the parameters with the best validation return so far (model
  selection on train-split tasks that training never uses; see ``[validation]``);
* ``config.json``: the config of the run; ``curve.png``: the learning curve (at the end).

A run directory holds one run: a ``Trainer`` refuses a directory that already holds run files
unless it resumes (``resume=True``, ``--resume``). Training stops with :class:`TrainingFailedError`
(naming the iteration and the inner rate) when a loss, a gradient or the parameters stop being
finite, when ``trpo.max_consecutive_rejections`` TRPO steps in a row were rejected, or, at the end,
when no TRPO step of the whole run was accepted.

Randomness: ``torch.Generator(seed)`` draws the initial weights and every action; a numpy
generator seeded by ``SeedSequence([seed, 1])`` draws the env seeds; the tasks of iteration ``i``
are train tasks ``i * meta_batch_size ...`` of the task stream ``task_seed``. Validation draws from
its own generators seeded by the iteration, so it changes no training number. A resumed run
restores all of it and continues with the same numbers as an uninterrupted one.
The linear baseline has no state to save: it is refit per task and per step. TRPO keeps no
optimizer state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from mandril.maml_rl.builders import build_policy, build_sampler
from mandril.maml_rl.config import VALIDATION_START, Config, config_from_dict, config_to_dict
from mandril.maml_rl.evaluation import exact_returns
from mandril.core.checkpoint import CheckpointError, load_checkpoint as load_checkpoint_file, save_checkpoint as save_checkpoint_file
from mandril.core.io import read_csv, write_csv, write_json
from mandril.functional import NonFiniteLossError
from mandril.maml_rl.metalearner import MAMLTRPO

__all__ = ["Trainer", "TrainingFailedError", "METRIC_FIELDS", "RUN_FILES", "load_checkpoint", "CHECKPOINT_FORMAT"]

#: The kind of every MAML-RL checkpoint (:mod:`mandril.core.checkpoint`).
CHECKPOINT_FORMAT = "mandril.maml_rl.checkpoint/1"

#: Columns of ``metrics.csv``. ``pre_return``/``post_return``: mean undiscounted episode return of the
#: meta-batch's pre-/post-update episodes (sampled with ``theta_i``, the parameters *before* step ``i``).
#: ``val_pre_return``/``val_post_return``: exact expected episode return on the validation tasks of
#: the parameters *after* step ``i`` (``nan`` when not validated at that iteration).
METRIC_FIELDS: tuple[str, ...] = (
    "iteration", "pre_return", "post_return", "pre_return_std", "post_return_std", "inner_loss", "loss_before",
    "loss_after", "kl", "step_fraction", "accepted", "cg_residual", "grad_norm", "val_pre_return", "val_post_return",
    "env_steps", "elapsed_s", "sps",
)

_INT_FIELDS = ("iteration", "accepted", "env_steps")

#: The files a run writes into its directory; any of them marks the directory as holding a run.
RUN_FILES: tuple[str, ...] = ("checkpoint.pt", "best.pt", "metrics.csv", "config.json", "curve.png")


class TrainingFailedError(RuntimeError):
    """Meta-training diverged or stalled; the message names the method, the meta-iteration and the inner rate."""


# config keys that may change between a run and its resumption
_RESUMABLE_CHANGES = {("maml", "num_batches"), ("checkpoint_every",), ("output_dir",)}


def load_checkpoint(path: Union[str, Path]) -> dict:
    """Read a checkpoint written by :class:`Trainer` (``weights_only`` loading, checksum checked; other files refused).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: damaged, unsafe, foreign or incomplete; the message names the file.
    """
    state = load_checkpoint_file(path, CHECKPOINT_FORMAT)
    missing = [key for key in ("config", "iteration", "policy") if key not in state]
    if missing:
        raise CheckpointError(f"{path}: the MAML-RL checkpoint is missing {missing}")
    return state


def _flat_diff(a: dict, b: dict, prefix: tuple = ()) -> list[tuple]:
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key != "kwargs":
            out.extend(_flat_diff(va, vb, prefix + (key,)))
        elif va != vb:
            out.append(prefix + (key,))
    return out


class Trainer:
    """Meta-trains a policy with MAML-TRPO as ``config`` says.

    Args:
        config: the run.
        run_dir: output directory (default ``config.run_dir``).
        progress: show a tqdm progress bar.
        resume: continue from ``run_dir/checkpoint.pt`` (its config must match, except
            ``maml.num_batches``, ``checkpoint_every``, ``output_dir`` and the ``[test]`` table).

    Raises:
        ValueError: if ``run_dir`` already holds a run and ``resume`` is False (nothing is read or
            written), or is a file; on resume, if the config differs from the checkpoint's.
    """

    def __init__(self, config: Config, *, run_dir: Optional[Union[str, Path]] = None, progress: bool = False,
                 resume: bool = False) -> None:
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else config.run_dir
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"output dir {str(self.run_dir)!r} is a file, not a directory")
        existing = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        if existing and not resume:
            raise ValueError(f"output dir {str(self.run_dir)!r} already holds a run ({', '.join(existing)}): "
                             f"pass --resume to continue it, or choose another output dir")
        self.progress = progress
        self.sampler = build_sampler(config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.policy = build_policy(config, self.sampler, self.generator)
        self.rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
        self.learner = MAMLTRPO.from_config(self.policy, config)
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0
        self.rows: list[dict] = []
        self.best_validation = -float("inf")
        self.best_iteration = -1
        if resume:
            self._resume()

    # --- checkpoints -----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        """``run_dir/checkpoint.pt``."""
        return self.run_dir / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        """``run_dir/best.pt``."""
        return self.run_dir / "best.pt"

    @property
    def metrics_path(self) -> Path:
        """``run_dir/metrics.csv``."""
        return self.run_dir / "metrics.csv"

    def state_dict(self) -> dict:
        """Everything needed to continue the run."""
        return {
            "config": config_to_dict(self.config),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "elapsed_s": self.elapsed,
            "policy": {k: v.detach().clone() for k, v in self.policy.state_dict().items()},
            "torch_generator": self.generator.get_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "best_validation": self.best_validation,
            "best_iteration": self.best_iteration,
        }

    def save_checkpoint(self, path: Optional[Path] = None) -> Path:
        """Write ``checkpoint.pt`` (or ``path``) atomically."""
        path = self.checkpoint_path if path is None else path
        return save_checkpoint_file(path, CHECKPOINT_FORMAT, self.state_dict())

    def _resume(self) -> None:
        state = load_checkpoint(self.checkpoint_path)
        saved = config_from_dict(state["config"])
        diff = [d for d in _flat_diff(config_to_dict(saved), config_to_dict(self.config))
                if d not in _RESUMABLE_CHANGES and d[0] != "test"]
        if diff:
            names = [".".join(d) for d in diff]
            raise ValueError(f"cannot resume {str(self.checkpoint_path)!r}: the config differs in {names} "
                             f"(only maml.num_batches, checkpoint_every, output_dir and [test] may change)")
        self.policy.load_state_dict(state["policy"])
        self.generator.set_state(state["torch_generator"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.iteration, self.env_steps, self.elapsed = int(state["iteration"]), int(state["env_steps"]), float(state["elapsed_s"])
        self.best_validation, self.best_iteration = float(state["best_validation"]), int(state["best_iteration"])
        if self.metrics_path.is_file():
            self.rows = [row for row in read_csv(self.metrics_path) if row["iteration"] < self.iteration]
            for row in self.rows:
                for key in _INT_FIELDS:
                    row[key] = int(row[key])

    # --- training ----------------------------------------------------------------------------------
    def run_iteration(self) -> dict:
        """Sample a meta-batch, take one TRPO step; returns the metrics row (also appended to :attr:`rows`)."""
        m = self.config.maml
        start = time.perf_counter()
        tasks = self.sampler.sample_tasks(m.meta_batch_size, "train", seed=self.config.task_seed,
                                          start=self.iteration * m.meta_batch_size)
        seeds = self.rng.integers(0, 2**31 - 1, size=m.num_steps + 1).tolist()
        try:
            rollouts = self.learner.sample(self.sampler, tasks, m.fast_batch_size, seeds=seeds, generator=self.generator)
            info = self.learner.step(rollouts)
        except (NonFiniteLossError, FloatingPointError) as error:
            raise TrainingFailedError(self._failure(self.iteration, f"{error}")) from None
        if not all(bool(torch.isfinite(p).all()) for p in self.policy.parameters()):
            raise TrainingFailedError(self._failure(self.iteration, "the policy parameters are not finite"))
        pre = rollouts.train[0].episode_returns().mean(dim=1)
        post = rollouts.valid.episode_returns().mean(dim=1)
        steps = sum(b.n_steps() for b in rollouts.train) + rollouts.valid.n_steps()
        seconds = time.perf_counter() - start
        self.env_steps += steps
        self.elapsed += seconds
        row = {
            "iteration": self.iteration,
            "pre_return": float(pre.mean()),
            "post_return": float(post.mean()),
            "pre_return_std": float(pre.std()) if len(pre) > 1 else 0.0,
            "post_return_std": float(post.std()) if len(post) > 1 else 0.0,
            **{k: float(info[k]) for k in ("inner_loss", "loss_before", "loss_after", "kl", "step_fraction", "cg_residual", "grad_norm")},
            "accepted": int(info["accepted"]),
            "val_pre_return": float("nan"),
            "val_post_return": float("nan"),
            "env_steps": self.env_steps,
            "elapsed_s": round(self.elapsed, 3),
            "sps": round(steps / max(seconds, 1e-9), 1),
        }
        self.rows.append(row)
        self.iteration += 1
        return row

    def _failure(self, iteration: int, what: str) -> str:
        m, t = self.config.maml, self.config.trpo
        return (f"MAML-TRPO failed at meta-iteration {iteration} (fast_lr = {m.fast_lr:g}, max_kl = {t.max_kl:g}): {what}; "
                f"a smaller [maml] fast_lr usually cures it")

    def check_progress(self) -> None:
        """Raise :class:`TrainingFailedError` when the last ``trpo.max_consecutive_rejections`` TRPO steps were all rejected."""
        limit = self.config.trpo.max_consecutive_rejections
        tail = [row["accepted"] for row in self.rows[-limit:]]
        if len(tail) == limit and not any(tail):
            raise TrainingFailedError(self._failure(
                self.rows[-1]["iteration"], f"the last {limit} TRPO steps were all rejected (none improved the surrogate within the trust region)"))

    def validate(self) -> tuple[float, float]:
        """Adapt the current ``theta`` on the validation tasks; ``(mean exact pre return, mean exact post return)``.

        Uses generators seeded by ``(seed, iteration)`` only, so the training streams are untouched.
        """
        c, m = self.config, self.config.maml
        tasks = self.sampler.sample_tasks(c.validation.n_tasks, "train", seed=c.task_seed, start=VALIDATION_START)
        seeds = [int(x) for x in np.random.SeedSequence([c.seed, 4, self.iteration]).generate_state(m.num_steps + 1) >> 1]
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([c.seed, 5, self.iteration]).generate_state(1)[0]))
        rollouts = self.learner.sample(self.sampler, tasks, m.fast_batch_size, seeds=seeds, generator=generator, valid_episodes=1)
        theta = {k: v.detach() for k, v in self.policy.params().items()}
        pre = exact_returns(self.sampler, self.policy, theta, tasks)
        post = exact_returns(self.sampler, self.policy, rollouts.adapted, tasks)
        return float(pre.mean()), float(post.mean())

    def train(self, num_batches: Optional[int] = None) -> list[dict]:
        """Run until ``num_batches`` (default ``config.maml.num_batches``) meta-iterations are done.

        Writes ``metrics.csv`` every batch, a checkpoint every ``checkpoint_every`` batches and at the
        end, then ``curve.png``; validates after every ``validation.every``-th step (at iterations
        that are multiples of it, so a resumed run validates exactly where an uninterrupted one does).
        ``elapsed_s`` counts sampling and TRPO steps only (not validation or file writes).

        Returns:
            All metric rows of the run (resumed ones included).
        """
        total = self.config.maml.num_batches if num_batches is None else int(num_batches)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "config.json", config_to_dict(self.config))
        bar: Any = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=min(self.iteration, total), desc=f"maml-rl {self.config.name}", unit="batch")
        try:
            while self.iteration < total:
                try:
                    row = self.run_iteration()
                    self.check_progress()
                except TrainingFailedError:
                    write_csv(self.metrics_path, self.rows, METRIC_FIELDS)  # the rows so far, for the diagnosis
                    raise
                every = self.config.validation.every
                if every and self.iteration % every == 0:
                    row["val_pre_return"], row["val_post_return"] = self.validate()
                    if row["val_post_return"] > self.best_validation:
                        self.best_validation, self.best_iteration = row["val_post_return"], self.iteration
                        self.save_checkpoint(self.best_path)
                write_csv(self.metrics_path, self.rows, METRIC_FIELDS)
                if self.iteration % self.config.checkpoint_every == 0 or self.iteration == total:
                    self.save_checkpoint()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(pre=f"{row['pre_return']:.3f}", post=f"{row['post_return']:.3f}", kl=f"{row['kl']:.4f}",
                                    best=f"{self.best_validation:.3f}@{self.best_iteration}")
        finally:
            if bar is not None:
                bar.close()
        if self.rows and not any(row["accepted"] for row in self.rows):
            raise TrainingFailedError(self._failure(
                self.rows[-1]["iteration"], f"every TRPO step of the run was rejected ({len(self.rows)} of {len(self.rows)})"))
        if not self.checkpoint_path.exists():
            self.save_checkpoint()
        if self.rows:
            from mandril.maml_rl.plotting import plot_curve

            plot_curve(self.metrics_path, self.run_dir / "curve.png", scale=self.config.maml.fast_batch_size,
                       title=f"MAML-TRPO {self.config.name}")
        return self.rows

    def close(self) -> None:
        """Close the sampler's envs."""
        self.sampler.close()
