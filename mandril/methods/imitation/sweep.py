"""The reproducible record of how the defaults of ``airl``, ``gail`` and ``bc`` were chosen, and the
command that measured them: fit methods on tasks of one split and print their scores.

    python -m mandril.methods.imitation.sweep --split train --tasks 3 --n 1 4 16 \\
        --method bc --set '{"time_feature": "onehot"}'

Tasks are ``env.unwrapped.sample_tasks(tasks, split, seed=task_seed)`` (``--split validation``: train-split
tasks from :data:`mandril.bench.suite.VALIDATION_START` on, as the tuning sweeps use); demos are the evaluation
protocol's (:func:`mandril.eval.shown_and_heldout_demos`, demo seed 0); methods get the model with
its reward hidden and are scored by :func:`mandril.eval.score` against the true one. Settings are
chosen on ``--split train`` tasks; ``--split test`` is for the final numbers only. One line per fit,
then the mean per ``n``; ``--out FILE`` also writes the records as JSON lines. Any registered method
can be run (the references and ``maxent_tabular`` for comparison). The benchmark harness
(``mandril.bench``) is the place for full suites; this is a small, single-process tool for the
baselines of this package.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Optional, Sequence

import numpy as np

from mandril.cli.options import thread_count

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mandril.methods.imitation.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="mandril_envs/GridWorld-v0", help="a registered mandril_envs/ id")
    parser.add_argument("--env-kwargs", default="{}", help="JSON kwargs of the env")
    parser.add_argument("--split", default="train", help="task split (choose settings on train or validation: train-split tasks from 1,000,000 on, which no training pool reaches)")
    parser.add_argument("--tasks", type=int, default=3, help="number of tasks")
    parser.add_argument("--task-seed", type=int, default=1, help="task stream seed")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 16], help="numbers of demos shown")
    parser.add_argument("--method", action="append", required=True, help="method name (repeat for several)")
    parser.add_argument("--set", default="{}", help="JSON settings applied to every --method")
    parser.add_argument("--seed", type=int, default=0, help="fit seed")
    parser.add_argument("--threads", type=thread_count, default=1, help="torch threads")
    parser.add_argument("--out", default=None, help="also write the records to this JSON-lines file")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the sweep (see the module docstring)."""
    args = _parser().parse_args(argv)
    import gymnasium as gym
    import torch

    import mandril_envs  # noqa: F401
    from mandril import methods
    from mandril.bench.suite import VALIDATION_SPLIT, VALIDATION_START
    from mandril.eval import score, shown_and_heldout_demos
    from mandril.methods import hide_reward
    from mandril_envs.env_settings import make_env
    from mandril_envs.registration import check_env_id

    torch.set_num_threads(args.threads)
    env = make_env(check_env_id(args.env), json.loads(args.env_kwargs), "--env-kwargs")
    base = env.unwrapped
    settings = json.loads(args.set)
    if args.split == VALIDATION_SPLIT:
        tasks = base.sample_tasks(args.tasks, "train", seed=args.task_seed, start=VALIDATION_START)
    else:
        tasks = base.sample_tasks(args.tasks, args.split, seed=args.task_seed)
    records = []
    for name in args.method:
        method = methods.make(name, **settings)
        for n in args.n:
            for task in tasks:
                base.set_task(task)
                demos = shown_and_heldout_demos(env, n, seed=0)
                model = base.model
                kind = method.input_kind if method.input_kind in base.reward_input_kinds else "features"
                start = time.perf_counter()
                output = method.fit(model if method.reads_true_reward else hide_reward(model), base.reward_input(kind), demos.states, demos.actions, seed=args.seed, label=f"{task.split}/{task.index}")
                seconds = time.perf_counter() - start
                s = score(model, output, demos.heldout_states, demos.heldout_actions, base.goal_state)
                record = {"method": name, "settings": settings, "env": args.env, "split": task.split, "task": task.index, "n": n, "seconds": seconds, **s.as_dict()}
                records.append(record)
                policy = "" if s.policy_normalized_evd is None else f" policy_nevd {s.policy_normalized_evd:.3f}"
                print(f"{name} n={n:<3d} task {task.split}/{task.index:<4d} evd {s.evd:8.3f} nevd {s.normalized_evd:.3f}{policy} nll {s.demo_nll:.3f} {seconds:6.1f}s", flush=True)
    print(f"settings: {json.dumps(settings)}  env: {args.env} {args.env_kwargs}  split: {args.split} x {args.tasks} (seed {args.task_seed})")
    print(f"{'method':<16}{'n':>4}{'evd':>9}{'nevd':>8}{'policy_nevd':>13}{'demo_nll':>10}{'s/fit':>8}")
    for name in args.method:
        for n in args.n:
            rows = [r for r in records if r["method"] == name and r["n"] == n]
            policy = [r["policy_normalized_evd"] for r in rows if r["policy_normalized_evd"] is not None]
            mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
            policy_text = f"{np.mean(policy):.3f}" if policy else "-"
            print(f"{name:<16}{n:>4}{mean('evd'):>9.3f}{mean('normalized_evd'):>8.3f}{policy_text:>13}{mean('demo_nll'):>10.3f}{mean('seconds'):>8.1f}")
    if args.out:
        from mandril.core.io import atomic_write_text

        atomic_write_text(args.out, "".join(json.dumps(record) + "\n" for record in records))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
