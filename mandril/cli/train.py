"""``mandril train METHOD``: prepare a method on a family's training tasks and save it as a run directory.

    mandril train mandril --env mandril_envs/GridWorld-v0 --iterations 1500 --out runs/mandril
    mandril train mandril --out runs/mandril --iterations 3000 --resume    # continue (or extend) a run
    mandril train pretrain_finetune --out runs/ptft --pretrain-iterations 500

A run directory holds ``run.json`` (the method, its settings, the family and the training pool),
``checkpoint.pt`` (the training state, written as it goes: ``--resume`` continues a killed run bit for
bit), ``metrics.csv`` and TensorBoard events, and ``prepared.pt`` (the trained method, at the end),
which ``mandril adapt`` reads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mandril.cli.options import HelpFormatter, add_config_options, changed_fields, given_config, non_negative_int, positive_int, reward_model_help, thread_count, torch_device
from mandril_envs.cli import json_object

__all__ = ["register", "read_run", "load_trained", "RUN_FILE", "PREPARED_FILE", "CHECKPOINT_FILE"]

RUN_FILE, PREPARED_FILE, CHECKPOINT_FILE = "run.json", "prepared.pt", "checkpoint.pt"
RUN_FORMAT = "mandril.run"
#: The largest run.json read (one is about 1 KB).
MAX_RUN_BYTES = 2**20

#: The methods ``train`` offers (those that learn from training tasks) and the field that says how long.
TRAINABLE: dict[str, str] = {"mandril": "iterations", "pretrain_finetune": "pretrain_iterations", "demo_conditioned": "iterations"}


def _prepared_kind(method: str) -> str:
    return f"mandril.prepared.{method}"


def register(subparsers: Any) -> None:
    """Add ``train METHOD`` for every method that learns from training tasks."""
    from mandril.methods import METHODS

    train = subparsers.add_parser(
        "train",
        help="train a method on a family's training tasks (mandril train METHOD --help)",
        description="Train a method that learns from training tasks (MandRIL, pre-train + fine-tune, demo-conditioned) and "
        "save it as a run directory for 'mandril adapt'. Single-task methods (maxent*, airl, gail, bc) need no training: "
        "run them through a benchmark suite.",
    )
    methods = train.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name in TRAINABLE:
        cls = METHODS[name]
        p = methods.add_parser(
            name,
            help=(cls.__doc__ or name).strip().splitlines()[0],
            description=f"{(cls.__doc__ or name).strip().splitlines()[0]} Writes run.json, checkpoint.pt (as it goes), metrics.csv, "
            f"TensorBoard events and prepared.pt to --out. --resume continues a killed run bit for bit (and may raise --{TRAINABLE[name].replace('_', '-')}). "
            + reward_model_help(),
            formatter_class=HelpFormatter,
        )
        p.add_argument("--out", required=True, help="run directory (refused if it already holds a run, unless --resume)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint; settings come from its run.json")
        p.add_argument("--env", default="mandril_envs/GridWorld-v0", help="registered env id of the task family")
        p.add_argument("--env-kwargs", type=json_object, default={}, help="family config as a JSON object, e.g. '{\"size\": 16}'")
        p.add_argument("--dataset", help="training dataset (.npz from 'mandril-envs demos generate', split train); default: generate a pool")
        p.add_argument("--train-tasks", type=positive_int, default=500, help="tasks in a generated training pool")
        p.add_argument("--train-demos", type=positive_int, default=20, help="expert demos per task in a generated pool")
        p.add_argument("--task-seed", type=non_negative_int, default=0, help="seed of the training task stream")
        p.add_argument("--demo-seed", type=non_negative_int, default=0, help="seed of the training demos")
        p.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads (1 is fastest on small shared machines)")
        p.add_argument("--device", type=torch_device, default="cpu", help="where training runs: cpu, or cuda (cuda:N) when a GPU is there")
        p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
        add_config_options(p, cls.Config)
        p.set_defaults(func=_cmd_train)


def read_run(run_dir: Path) -> dict:
    """A run's ``run.json``, checked before anything in it reaches ``gym.make`` (its env id must be a
    registered ``mandril_envs/`` id: an id naming a module would import it)."""
    from mandril.methods import METHODS
    from mandril_envs.registration import check_env_id

    from mandril_envs.files import parse_json, read_regular_bytes

    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {RUN_FILE} in {str(run_dir)!r}: is it a run directory of 'mandril train'?")
    run = parse_json(read_regular_bytes(path, RUN_FILE, MAX_RUN_BYTES), str(path))  # a FIFO, a device, a huge or deeply nested file: refused
    if not isinstance(run, dict) or run.get("format") != RUN_FORMAT:
        raise ValueError(f"{path}: not a mandril run file (format {RUN_FORMAT!r})")
    missing = [key for key in ("method", "config", "env_id", "env_kwargs", "pool") if key not in run]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    if not isinstance(run["method"], str) or run["method"] not in TRAINABLE:
        raise ValueError(f"{path}: method must be one of {list(TRAINABLE)}, got {run['method']!r:.80}")
    check_env_id(run["env_id"], f"{path}: env_id")
    for key in ("config", "env_kwargs", "pool"):
        if not isinstance(run[key], dict):
            raise ValueError(f"{path}: {key} must be a JSON object, got {type(run[key]).__name__}")
    pool_types = {"dataset": (str, type(None)), "n_tasks": int, "n_demos": int, "task_seed": int, "demo_seed": int}
    if set(run["pool"]) != set(pool_types):
        raise ValueError(f"{path}: pool must have exactly the keys {sorted(pool_types)}, got {sorted(run['pool'])}")
    for key, kind in pool_types.items():
        value = run["pool"][key]
        if isinstance(value, bool) or not isinstance(value, kind) or (isinstance(value, int) and value < (1 if key.startswith("n_") else 0)):
            raise ValueError(f"{path}: pool {key} must be {'a path or null' if key == 'dataset' else 'an int >= ' + ('1' if key.startswith('n_') else '0')}, got {value!r:.80}")
    run["_class"] = METHODS[run["method"]]
    return run


def load_trained(run_dir: Path) -> tuple[Any, dict]:
    """The trained method of a run directory (from ``prepared.pt``) and its ``run.json``."""
    from mandril.core.checkpoint import load_checkpoint
    from mandril.methods import make

    run = read_run(run_dir)
    method = make(run["method"], **run["config"])
    prepared = Path(run_dir) / PREPARED_FILE
    if not prepared.is_file():
        raise FileNotFoundError(f"no {PREPARED_FILE} in {str(run_dir)!r}: the run did not finish; continue it with 'mandril train {run['method']} --out {run_dir} --resume'")
    method.load_state_dict(load_checkpoint(prepared, _prepared_kind(run["method"])))
    return method, run


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from mandril.core.checkpoint import save_checkpoint
    from mandril.core.io import check_writable_dir, write_json
    from mandril.methods import METHODS, make
    from mandril.methods.family_defaults import family_defaults
    from mandril_envs.dataset import DemoDataset, collect
    from mandril_envs.env_settings import check_env_settings
    from mandril_envs.registration import check_env_id
    from mandril_envs.tasks import plain_differences

    out = check_writable_dir(args.out)
    given = given_config(args)
    length = TRAINABLE[args.method]
    if args.resume:
        run = read_run(out)
        if run["method"] != args.method:
            raise ValueError(f"{out} holds a {run['method']} run, not a {args.method} one")
        changed = [name for name in changed_fields(given, run["config"]) if name != length]
        if changed:
            raise ValueError(f"--resume continues the run with its own settings; these differ from {out / RUN_FILE}: {changed} (only --{length.replace('_', '-')} may change): start a new run to change them")
        config = {**run["config"], **({length: given[length]} if length in given else {})}
        env_id, env_kwargs, pool = run["env_id"], run["env_kwargs"], run["pool"]
    else:
        if (out / RUN_FILE).exists() or (out / CHECKPOINT_FILE).exists():
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
        env_id, env_kwargs = check_env_id(args.env, "--env"), args.env_kwargs
        pool = {"dataset": args.dataset, "n_tasks": args.train_tasks, "n_demos": args.train_demos, "task_seed": args.task_seed, "demo_seed": args.demo_seed}
        config = given
    # every setting is checked before anything is written: the env and its kwargs (sizes, plans), the pool,
    # the method, what its reward model reads; a failed start leaves nothing behind
    where = f"{out / RUN_FILE}: env_kwargs" if args.resume else "--env-kwargs"
    datasets = () if pool["dataset"] else ((("--train-tasks", "--train-demos"), pool["n_tasks"], pool["n_demos"]),)
    env = check_env_settings(env_id, env_kwargs, where, split="train", datasets=datasets)
    base = env.unwrapped
    if not args.resume:  # a family without a map: the method reads the features (family_defaults)
        config = {**family_defaults(METHODS[args.method], base.reward_input_kinds, config), **config}
    method = make(args.method, **config)
    if method.input_kind not in base.reward_input_kinds:
        raise ValueError(f"{args.method} reads {method.input_kind!r} inputs, which {env_id} does not offer ({list(base.reward_input_kinds)}): set --input-kind (and --reward-model)")
    if args.device != "cpu":
        method.to(args.device)
    torch.set_num_threads(args.threads)
    if pool["dataset"]:
        dataset = DemoDataset.load(pool["dataset"], env_id=env_id, split="train")
        if plain_differences(dataset.tasks[0].config, base.config):
            raise ValueError(f"--dataset {pool['dataset']!r} holds tasks of another config than --env-kwargs: {plain_differences(dataset.tasks[0].config, base.config)}")
    else:
        dataset = collect(env_id, pool["n_tasks"], pool["n_demos"], "train", pool["task_seed"], pool["demo_seed"], env_kwargs=env_kwargs, progress=not args.quiet)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, {"format": RUN_FORMAT, "version": 1, "method": args.method, "config": method.settings(), "env_id": env_id, "env_kwargs": env_kwargs, "pool": pool})
    start = time.perf_counter()
    method.prepare(dataset, checkpoint=out / CHECKPOINT_FILE, log_dir=out, progress=not args.quiet)
    save_checkpoint(out / PREPARED_FILE, _prepared_kind(args.method), method.state_dict())
    if not args.quiet:
        history = method.trainer.history
        last = f"; last loss {history[-1]['outer_loss']:.4f} per step" if history else ""
        print(f"{args.method}: {method.trainer.iteration} iterations ({time.perf_counter() - start:.1f} s this session){last}; run in {out}")
    return 0
