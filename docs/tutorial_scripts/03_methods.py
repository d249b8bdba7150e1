# %% [markdown]
# # Every method on one task, scored
#
# Every method sits behind one interface (`mandril.methods`): `make(name, **config)`, then `prepare(pool)`
# on training tasks for the meta-learning methods, then `fit(model without its reward, inputs, states,
# actions)` on a new task's demos. Each returns a reward table or a policy, scored by the same planner
# against the true model: **normalized EVD** 0 is as good as the expert, 1 as bad as a uniform random policy.
#
# The budgets below are tiny so that this page builds in seconds (the numbers mean nothing; the
# [results](../results/index.md) use the tuned settings of `benchmarks/suites/quick.toml`).

# %%
import gymnasium as gym
import torch

import mandril
from mandril.methods import METHODS, FitProblem, hide_reward
from mandril_envs.dataset import collect

torch.set_num_threads(1)
GRID = {"size": 5}
SMALL_CONV = {"kind": "conv", "hidden": [4]}
TINY = {
    "mandril": {"reward_model": SMALL_CONV, "iterations": 3, "meta_batch_size": 2, "n_train_demos": 1, "n_test_demos": 2},
    "pretrain_finetune": {"reward_model": SMALL_CONV, "pretrain_iterations": 3, "pretrain_batch_size": 2, "pretrain_demos": 2, "max_steps": 5},
    "demo_conditioned": {"reward_model": SMALL_CONV, "iterations": 3, "meta_batch_size": 2, "n_demos_choices": [1, 2], "n_test_demos": 2},
    "map_prior": {"pool_max_steps": 20, "max_steps": 20},
    "maxent": {"reward_model": SMALL_CONV, "max_steps": 5},
    "maxent_linear": {"max_steps": 50},
    "maxent_tabular": {"max_steps": 50},
    "airl": {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_hidden": [8], "reward_hidden": [8], "potential_hidden": [8]},
    "gail": {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_hidden": [8], "reward_hidden": [8]},
    "bc": {"n_batches": 5, "hidden": [8]},
}
print(sorted(METHODS))

# %% [markdown]
# Training tasks for the methods that learn across tasks, and one held-out task with two demos shown
# (and eight more held out, for the demo likelihood):

# %%
pool = collect("mandril_envs/GridWorld-v0", n_tasks=6, n_demos=4, split="train", env_kwargs=GRID)
env = gym.make("mandril_envs/GridWorld-v0", **GRID)
task = env.unwrapped
task.set_task(task.sample_tasks(1, "test", seed=1)[0])
demos = mandril.shown_and_heldout_demos(env, n=2, seed=0)
inputs = {kind: task.reward_input(kind) for kind in task.reward_input_kinds}
print("shown", demos.states.shape, "held out", demos.heldout_states.shape, "inputs", {k: v.shape for k, v in inputs.items()})

# %% [markdown]
# Fit every registered method and score it. A method sees the dynamics but not the reward
# (`hide_reward`), except the references that say so (`reads_true_reward`: the expert; `bayes` reads the
# family's prior).

# %%
rows = []
for name, cls in METHODS.items():
    method = mandril.make(name, **TINY.get(name, {}))
    if method.needs_preparation:
        method.prepare(pool)
    problem = FitProblem(task.model if method.reads_true_reward else hide_reward(task.model), inputs[method.input_kind],
                         demos.states, demos.actions, seed=0, label="test/0",
                         prior=task.reward_prior() if method.reads_reward_prior else None)
    output = method.fit_batch([problem])[0]
    scores = mandril.score(task.model, output, demos.heldout_states, demos.heldout_actions, task.goal_state)
    rows.append((name, method.kind, scores.normalized_evd, scores.success))
for name, kind, evd, success in rows:
    print(f"{name:18s} {kind:10s} normalized EVD {evd:6.3f}   P(goal at the end) {success:.2f}")
scores = {name: evd for name, _, evd, _ in rows}
assert abs(scores["expert"]) < 1e-9 and abs(scores["uniform_policy"] - 1.0) < 1e-9
assert scores["bayes"] < 1e-6  # the posterior mode is exact on this family from one demo

# %% [markdown]
# Single-task methods (MaxEnt in its three forms, AIRL, GAIL, BC) need no training, and `mandril fit`
# runs one on every task of a dataset:
#
# ```bash
# mandril-envs demos generate --env mandril_envs/TabularMDP-Linear-v0 --split test --tasks 10 --demos 12 --out mdp.npz
# mandril fit maxent_linear --dataset mdp.npz --demos 4 --l2 0.1 --out mdp-fits.npz
# ```
#
# and `mandril train METHOD` / `mandril adapt` train a meta-method and score it on held-out tasks.
