"""``mandril train mandril``, ``mandril adapt`` and ``mandril bench``.

    mandril train mandril --env mandril_envs/GridWorld-v0 --iterations 1500 --out runs/mandril
    mandril train mandril --out runs/mandril --iterations 3000 --resume    # continue a run
    mandril adapt --run runs/mandril --split test --tasks 20 --demos 2      # score on held-out tasks
    mandril bench --suite benchmarks/suites/quick.toml --out reports/quick
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mandril_envs.cli import json_object

__all__ = ["register"]

RUN_FILE = "run.json"


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated ints, got {text!r}") from None


def _add_train(subparsers: Any) -> None:
    train = subparsers.add_parser("train", help="train an IRL method (see: mandril train mandril --help)")
    methods = train.add_subparsers(dest="method", metavar="METHOD")
    p = methods.add_parser(
        "mandril",
        help="meta-train MandRIL on a family's training tasks",
        description="Meta-train MandRIL (Xu et al. 2019): learn the initial reward-model parameters so that a few MaxEnt IRL "
        "steps on a new task's demos give a good reward. Writes run.json, metrics.csv, checkpoint.pt (and TensorBoard "
        "events if installed) to --out. --resume continues a killed run bit for bit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--env", default="mandril_envs/GridWorld-v0", help="registered env id")
    p.add_argument("--env-kwargs", type=json_object, default={}, help="family config (JSON object)")
    p.add_argument("--input", default="map", choices=["features", "map", "rgb"], help="what the reward model reads")
    p.add_argument("--reward-model", default="conv", choices=["linear", "mlp", "conv"], help="reward model")
    p.add_argument("--hidden", type=_int_list, default=(32, 32), help="hidden widths, comma-separated")
    p.add_argument("--dataset", help="training dataset (.npz from mandril-envs demos generate); default: generate a pool")
    p.add_argument("--train-tasks", type=int, default=500, help="training tasks in a generated pool")
    p.add_argument("--train-demos", type=int, default=20, help="demos per task in a generated pool")
    p.add_argument("--on-the-fly", action="store_true", help="draw fresh tasks and demos every meta-iteration instead of a pool")
    p.add_argument("--iterations", type=int, default=1500, help="total meta-iterations")
    p.add_argument("--meta-batch-size", type=int, default=16)
    p.add_argument("--inner-lr", type=float, default=0.03)
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--adapt-steps", type=int, default=1, help="steps when adapting to a new task")
    p.add_argument("--n-train-demos", type=int, default=2, help="K: inner-loop demos per task")
    p.add_argument("--n-test-demos", type=int, default=10, help="K': outer-loss demos per task")
    p.add_argument("--meta-lr", type=float, default=3e-3)
    p.add_argument("--first-order", action="store_true", help="first-order meta-gradient")
    p.add_argument("--meta-sgd", action="store_true", help="learn a per-parameter inner learning rate")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train_mandril)


def _add_adapt(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "adapt",
        help="adapt a trained MandRIL run to held-out tasks and score it",
        description="Adapt the meta-learned reward model of --run to held-out tasks from their demos, score the adapted "
        "rewards (expected value difference) and write them to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--run", required=True, help="run directory of mandril train mandril")
    p.add_argument("--dataset", help="held-out dataset (.npz); default: sample --tasks of --split")
    p.add_argument("--split", default="test")
    p.add_argument("--tasks", type=int, default=20)
    p.add_argument("--demos", type=int, default=2, help="demos of each new task")
    p.add_argument("--steps", type=int, help="adaptation steps (default: the run's adapt_steps)")
    p.add_argument("--seed", type=int, default=0, help="demo seed")
    p.add_argument("--out", help="write the adapted reward tables and scores (.npz)")
    p.set_defaults(func=_cmd_adapt)


def _add_bench(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark suite (train, score on held-out tasks, report)",
        description="Run a benchmark suite file: train MandRIL and the baselines on the family's training tasks, score them "
        "on held-out tasks, and write records.csv, summary.csv, evd.png and report.md to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--suite", default="benchmarks/suites/quick.toml", help="suite TOML file")
    p.add_argument("--out", default="reports/quick", help="output directory")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)


def register(subparsers: Any) -> None:
    """Add ``train``, ``adapt`` and ``bench``."""
    _add_train(subparsers)
    _add_adapt(subparsers)
    _add_bench(subparsers)


# --- commands -------------------------------------------------------------------------------
def _make_source(args: argparse.Namespace, dtype: Any) -> Any:
    from mandril.irl_data import DatasetSource, GeneratedSource
    from mandril_envs.dataset import DemoDataset, collect

    if args.on_the_fly:
        return GeneratedSource(args.env, args.env_kwargs, input_kind=args.input, dtype=dtype)
    if args.dataset:
        dataset = DemoDataset.load(args.dataset, env_id=args.env, split="train")
    else:
        dataset = collect(args.env, args.train_tasks, args.train_demos, "train", env_kwargs=args.env_kwargs, progress=not args.quiet)
    return DatasetSource(dataset, args.input, dtype=dtype)


def _cmd_train_mandril(args: argparse.Namespace) -> int:
    import torch

    from mandril.meta_irl import MandRIL, MandRILConfig
    from mandril.reward_factory import RewardModelSpec, build_reward_model

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    config = MandRILConfig(
        inner_lr=args.inner_lr,
        inner_steps=args.inner_steps,
        adapt_steps=args.adapt_steps,
        meta_batch_size=args.meta_batch_size,
        n_train_demos=args.n_train_demos,
        n_test_demos=args.n_test_demos,
        meta_lr=args.meta_lr,
        first_order=args.first_order,
        learn_inner_lr=args.meta_sgd,
        temperature=args.temperature,
        seed=args.seed,
    )
    spec = RewardModelSpec(args.reward_model, args.hidden)
    source_args = {"dataset": args.dataset, "train_tasks": args.train_tasks, "train_demos": args.train_demos, "on_the_fly": args.on_the_fly}
    run = {"env_id": args.env, "env_kwargs": args.env_kwargs, "input_kind": args.input, "reward_model": asdict(spec), "config": asdict(config), "source": source_args}
    if args.resume:
        if not (out / RUN_FILE).is_file() or not (out / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"--resume needs {out / RUN_FILE} and {out / 'checkpoint.pt'} from an earlier run")
        # everything that shapes the run comes from run.json, so the continuation is the same stream
        saved = _read_run_file(out / RUN_FILE)
        spec = RewardModelSpec(**{**saved["reward_model"], "hidden": tuple(saved["reward_model"]["hidden"])})
        config = MandRILConfig(**saved["config"])
        args.env, args.env_kwargs, args.input = saved["env_id"], saved["env_kwargs"], saved["input_kind"]
        for key, value in saved["source"].items():
            setattr(args, key, value)
    elif (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    source = _make_source(args, config.torch_dtype)
    sample = source.sample(1, 1, 0, np.random.default_rng(0)) if args.on_the_fly else None
    sample_inputs = sample.inputs[0].numpy() if sample is not None else source.inputs[0]
    n_states = sample.tasks.n_states if sample is not None else source.models[0].state_dim
    trainer = MandRIL(build_reward_model(spec, sample_inputs, n_states, config.seed, config.torch_dtype), config)
    if args.resume:
        trainer.load_checkpoint(out / "checkpoint.pt")
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_FILE).write_text(json.dumps(run, indent=1))
    rows = trainer.meta_train(source, args.iterations, log_dir=out, checkpoint_every=args.checkpoint_every, progress=not args.quiet)
    trainer.save_checkpoint(out / "checkpoint.pt")
    if rows and not args.quiet:
        seconds = sum(r["seconds"] for r in rows)
        print(f"{len(rows)} meta-iterations in {seconds:.1f} s ({1000 * seconds / len(rows):.0f} ms each); last meta-loss {rows[-1]['outer_loss']:.4f}; run in {out}")
    return 0


def _read_run_file(path: Path) -> dict:
    """A run's ``run.json``, checked before anything in it reaches ``gym.make`` (its env id must be a
    registered ``mandril_envs/`` id: an id naming a module would import it)."""
    from mandril_envs.registration import check_env_id

    try:
        run = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(run, dict):
        raise ValueError(f"{path}: must hold a JSON object, got {type(run).__name__}")
    missing = [key for key in ("env_id", "env_kwargs", "input_kind", "reward_model", "config", "source") if key not in run]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}: is it a run of 'mandril train mandril'?")
    check_env_id(run["env_id"], f"{path}: env_id")
    if not isinstance(run["env_kwargs"], dict):
        raise ValueError(f"{path}: env_kwargs must be a JSON object, got {type(run['env_kwargs']).__name__}")
    return run


def load_run(run_dir: str | Path) -> tuple[Any, dict]:
    """Rebuild the trainer of a run directory from its run.json and checkpoint."""
    import gymnasium as gym

    from mandril.irl_data import task_inputs
    from mandril.meta_irl import MandRIL, MandRILConfig
    from mandril.reward_factory import RewardModelSpec, build_reward_model

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"no {RUN_FILE} in {run_dir}: is it a run directory of 'mandril train mandril'?")
    run = _read_run_file(run_dir / RUN_FILE)
    env = gym.make(run["env_id"], **run["env_kwargs"])
    spec = RewardModelSpec(**{**run["reward_model"], "hidden": tuple(run["reward_model"]["hidden"])})
    config = MandRILConfig(**run["config"])
    trainer = MandRIL(build_reward_model(spec, task_inputs(env, run["input_kind"]), env.unwrapped.state_dim, config.seed, config.torch_dtype), config)
    trainer.load_checkpoint(run_dir / "checkpoint.pt")
    return trainer, run


def _cmd_adapt(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from mandril.irl_data import task_inputs
    from mandril.metrics import score, summarize
    from mandril_envs.dataset import DemoDataset
    from mandril_envs.demos import generate

    trainer, run = load_run(args.run)
    env = gym.make(run["env_id"], **run["env_kwargs"])
    base = env.unwrapped
    if args.dataset:
        dataset = DemoDataset.load(args.dataset, env_id=run["env_id"])
        tasks = list(dataset.tasks)
        demos = [(dataset.states[i, : args.demos], dataset.actions[i, : args.demos]) for i in range(dataset.n_tasks)]
    else:
        tasks = base.sample_tasks(args.tasks, args.split, seed=1)
        demos = []
        for task in tasks:
            base.set_task(task)
            trajectories = generate(env, args.demos, seed=args.seed * 100_003 + task.index)
            demos.append((np.stack([t.states for t in trajectories]), np.stack([t.actions for t in trajectories])))
    rewards, evds = [], []
    for task, (states, actions) in zip(tasks, demos):
        base.set_task(task)
        reward = trainer.adapt(base.model, task_inputs(env, run["input_kind"]), states, actions, args.steps)
        rewards.append(reward)
        evds.append(score(base.model, reward).evd)
    summary = summarize(evds)
    print(f"{len(tasks)} tasks ({tasks[0].split}), {args.demos} demos each: EVD mean {summary['mean']:.3f} [95% CI {summary['ci_low']:.3f}, {summary['ci_high']:.3f}]")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, rewards=np.stack(rewards), evd=np.array(evds), tasks=np.array([t.to_json() for t in tasks]))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mandril.bench import load_suite, run_suite

    suite = load_suite(args.suite)
    result = run_suite(suite, args.out, progress=not args.quiet)
    print(f"report: {Path(args.out) / 'report.md'}")
    for row in result["summary"]:
        print(f"  {row['split']:12s} {row['method']:18s} n={row['n_demos']}: EVD {row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
    return 0
