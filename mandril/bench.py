"""The benchmark harness: a suite file (TOML) -> trained methods -> scored records -> report + plots.

A suite trains what needs training on the family's train split (MandRIL; pre-training for
pre-train + fine-tune), then scores every method on held-out tasks with
:func:`mandril.evaluation.evaluate`, and writes to ``--out``:

* ``records.csv``: one row per (method, split, task, seed, n_demos) with every score;
* ``summary.csv``: mean, IQM and 95% bootstrap CI of EVD per (method, split, n_demos);
* ``evd.png``: EVD against the number of demos, per split;
* ``training.csv``: the meta-training curves; ``report.md``: all of it, readable.

Methods (``methods = [...]`` in the suite):

* ``mandril``: MandRIL meta-training, then ``adapt_steps`` inner steps on the new task's demos;
* ``pretrain_finetune``: the same reward model trained on all training tasks' demos pooled
  (MandRIL with no inner step: the outer loss at ``theta`` itself), then fine-tuned on the new
  task's demos as MaxEnt IRL fits (``[maxent]`` settings) from the pre-trained weights;
* ``maxent``: MaxEnt IRL from a fresh random initialisation of the same model (per task).
"""

from __future__ import annotations

import json
import platform
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mandril.evaluation import EvaluationConfig, evaluate, plot_evd, summarize_records, write_records
from mandril.irl_data import DatasetSource
from mandril.meta_irl import MandRIL, MandRILConfig
from mandril.reward_factory import RewardModelSpec, build_reward_model, maxent_method
from mandril_envs.dataset import collect
from mandril_envs.demos import ExpertSettings

__all__ = ["Suite", "load_suite", "run_suite"]

METHODS = ("mandril", "pretrain_finetune", "maxent")


@dataclass
class TrainingPool:
    """The training tasks: ``n_tasks`` tasks of the train split with ``n_demos`` expert demos each."""

    n_tasks: int = 500
    n_demos: int = 20
    task_seed: int = 0
    demo_seed: int = 0


@dataclass
class MaxEntSettings:
    """MaxEnt IRL from scratch: Adam for ``steps`` steps at ``lr`` with an ``l2`` parameter penalty, from a fresh init (seeded per task)."""

    steps: int = 100
    lr: float = 0.05
    l2: float = 0.01


@dataclass
class Suite:
    """A benchmark suite (see ``benchmarks/suites/*.toml``)."""

    name: str
    env_id: str = "mandril_envs/GridWorld-v0"
    env_kwargs: dict = field(default_factory=dict)
    input_kind: str = "map"
    methods: tuple[str, ...] = METHODS
    expert: ExpertSettings = field(default_factory=ExpertSettings)
    reward_model: RewardModelSpec = field(default_factory=RewardModelSpec)
    train: TrainingPool = field(default_factory=TrainingPool)
    mandril: MandRILConfig = field(default_factory=MandRILConfig)
    iterations: int = 300
    pretrain_iterations: int = 300
    maxent: MaxEntSettings = field(default_factory=MaxEntSettings)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty list from {list(METHODS)}, got {list(self.methods)}")
        for name in ("iterations", "pretrain_iterations", "threads"):
            if getattr(self, name) < (1 if name == "threads" else 0):
                raise ValueError(f"{name} must be >= {1 if name == 'threads' else 0}, got {getattr(self, name)}")
        # the held-out tasks come from the same family, read the same way, shown by the same expert
        self.evaluation.env_id, self.evaluation.env_kwargs = self.env_id, dict(self.env_kwargs)
        self.evaluation.input_kind, self.evaluation.expert = self.input_kind, self.expert


_SECTIONS: dict[str, Any] = {
    "expert": ExpertSettings,
    "reward_model": RewardModelSpec,
    "train": TrainingPool,
    "mandril": MandRILConfig,
    "maxent": MaxEntSettings,
    "evaluation": EvaluationConfig,
}


def _build(cls: Any, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise TypeError(f"[{where}] must be a table, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"[{where}] has unknown keys {unknown}; allowed: {sorted(names)}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**converted)
    except TypeError as error:
        raise TypeError(f"[{where}]: {error}") from None


def load_suite(path: str | Path) -> Suite:
    """Read a suite TOML file; unknown keys and bad values are refused with the key named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no suite file at {str(path)!r}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    from mandril_envs.registration import check_env_id

    if "env_id" in data:  # before anything reaches gym.make: an id naming a module would import it
        check_env_id(data["env_id"], f"{path}: env_id")
    top = {k: v for k, v in data.items() if k not in _SECTIONS}
    sections = {k: _build(cls, data[k], k) for k, cls in _SECTIONS.items() if k in data}
    return _build(Suite, {**top, **sections}, "suite")


def _seeded_init(spec: RewardModelSpec, sample_inputs: np.ndarray, n_states: int, seed: int) -> torch.nn.Module:
    return build_reward_model(spec, sample_inputs, n_states, seed)


def run_suite(suite: Suite, out_dir: str | Path, progress: bool = True) -> dict:
    """Train, evaluate and report; returns ``{"summary": [...], "timings": {...}}``."""
    torch.set_num_threads(suite.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = collect(
        suite.env_id, suite.train.n_tasks, suite.train.n_demos, "train", suite.train.task_seed, suite.train.demo_seed, suite.expert, suite.env_kwargs, progress
    )
    timings["training demos"] = time.perf_counter() - start
    source = DatasetSource(dataset, suite.input_kind, dtype=suite.mandril.torch_dtype)
    sample_inputs, n_states = source.inputs[0], source.models[0].state_dim
    methods: dict[str, Callable[..., np.ndarray]] = {}
    curves: list[dict] = []
    if "mandril" in suite.methods:
        trainer = MandRIL(_seeded_init(suite.reward_model, sample_inputs, n_states, suite.mandril.seed), suite.mandril)
        start = time.perf_counter()
        rows = trainer.meta_train(source, suite.iterations, log_dir=out / "mandril", checkpoint_every=max(1, suite.iterations // 5), progress=progress, tensorboard=False)
        timings["mandril meta-training"] = time.perf_counter() - start
        curves += [{"method": "mandril", **row} for row in rows]
        methods["mandril"] = lambda model, inputs, states, actions, t=trainer: t.adapt(model, inputs, states, actions)
    if "pretrain_finetune" in suite.methods:
        config = MandRILConfig(**{**asdict(suite.mandril), "inner_steps": 0, "learn_inner_lr": False})
        pretrainer = MandRIL(_seeded_init(suite.reward_model, sample_inputs, n_states, suite.mandril.seed), config)
        start = time.perf_counter()
        rows = pretrainer.meta_train(source, suite.pretrain_iterations, log_dir=out / "pretrain", progress=progress, tensorboard=False)
        timings["pre-training"] = time.perf_counter() - start
        curves += [{"method": "pretrain_finetune", **row} for row in rows]
        methods["pretrain_finetune"] = maxent_method(
            suite.reward_model, sample_inputs, n_states, suite.maxent.steps, suite.maxent.lr, suite.mandril.torch_dtype, suite.mandril.seed, suite.maxent.l2, init=pretrainer.reward_model
        )
    if "maxent" in suite.methods:
        methods["maxent"] = maxent_method(suite.reward_model, sample_inputs, n_states, suite.maxent.steps, suite.maxent.lr, suite.mandril.torch_dtype, suite.mandril.seed, suite.maxent.l2)
    start = time.perf_counter()
    records = evaluate(methods, suite.evaluation, progress=progress)
    timings["evaluation"] = time.perf_counter() - start
    summary = summarize_records(records, "evd")
    write_records(records, out / "records.csv")
    write_records(summary, out / "summary.csv")
    if curves:
        write_records(curves, out / "training.csv")
    plot_evd(summary, out / "evd.png", title=f"{suite.name}: {suite.env_id}")
    _write_report(suite, summary, timings, out)
    return {"summary": summary, "timings": timings}


def _write_report(suite: Suite, summary: list[dict], timings: dict[str, float], out: Path) -> None:
    lines = [
        f"# Benchmark `{suite.name}`",
        "",
        f"Env `{suite.env_id}` {json.dumps(suite.env_kwargs)}; reward model `{suite.reward_model.kind}` on `{suite.input_kind}` inputs; "
        f"{suite.train.n_tasks} training tasks x {suite.train.n_demos} demos; MandRIL {suite.iterations} meta-iterations "
        f"(meta-batch {suite.mandril.meta_batch_size}, K={suite.mandril.n_train_demos}, K'={suite.mandril.n_test_demos}, "
        f"inner lr {suite.mandril.inner_lr}, {suite.mandril.inner_steps} inner step(s), {suite.mandril.adapt_steps} adaptation steps).",
        f"Held-out: {suite.evaluation.n_tasks} tasks per split x seeds {list(suite.evaluation.seeds)}; expert {suite.expert.policy} "
        f"(temperature {suite.expert.temperature}). Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}.",
        "",
        "Expected value difference (lower is better; mean [95% bootstrap CI] over tasks x seeds):",
        "",
    ]
    splits = sorted({r["split"] for r in summary})
    ns = sorted({r["n_demos"] for r in summary})
    for split in splits:
        lines += [f"### {split}", "", "| method | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for method in sorted({r["method"] for r in summary}):
            cells = []
            for n in ns:
                row = next((r for r in summary if r["split"] == split and r["method"] == method and r["n_demos"] == n), None)
                failed = f" ({row['failed']} diverged)" if row is not None and row.get("failed") else ""
                cells.append("" if row is None else f"{row['mean']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]{failed}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["![EVD against demos](evd.png)", "", "Timings (seconds):", ""]
    lines += [f"- {name}: {seconds:.1f}" for name, seconds in timings.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
