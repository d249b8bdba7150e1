# %% [markdown]
# # A tour of the task suite
#
# `mandril_envs` needs only numpy and gymnasium. Importing it registers every id of the `mandril_envs/`
# namespace; each env carries its task's known model (the matrices `step()` samples from).

# %%
import gymnasium as gym
import numpy as np

import mandril_envs
from mandril_envs import demos, planning

print(mandril_envs.ENV_IDS)
assert "mandril_envs/GridWorld-v0" in mandril_envs.ENV_IDS

# %% [markdown]
# Make an env, reset it and look at it. `render_mode="ansi"` gives text, `"rgb_array"` a small picture
# (the pictures on the [family pages](../families/index.md) are those).

# %%
env = gym.make("mandril_envs/GridWorld-v0", render_mode="ansi")
obs, info = env.reset(seed=0)
print(env.render())  # G: goal sprite, X: obstacles, @: agent, '.' dirt, ',' grass
base = env.unwrapped
print("S x A:", base.state_dim, "x", base.action_dim, " horizon:", base.horizon)
print("P[s, a, s']", base.transition_matrix.shape, " r(s)", base.reward_matrix.shape, " features", base.feature_matrix.shape)
assert np.allclose(base.transition_matrix.sum(axis=-1), 1.0)

# %% [markdown]
# Tasks are plain data, determined by (family config, split, index, seed). The splits are disjoint by
# construction: `test` holds new sprite combinations, `test_unseen` sprites never seen in training.

# %%
train = base.sample_tasks(2, split="train", seed=0)
test = base.sample_tasks(2, split="test", seed=0)
unseen = base.sample_tasks(2, split="test_unseen", seed=0)
print([(t.split, t.index, t.params["goal"]["type"]) for t in train + test + unseen])
text = test[0].to_json()
base.set_task(mandril_envs.Task.from_json(text))
assert base.task == test[0]

# %% [markdown]
# Plan on the model (numpy soft value iteration) and roll an expert out through the env itself.

# %%
plan = planning.soft_value_iteration(base.model)
visits = planning.state_visitation(base.model, plan.policy)
print("policy", plan.policy.shape, " visitation rows sum to", visits.sum(axis=1)[:3])
soft = planning.expected_return(base.model, plan.policy)
uniform = planning.expected_return(base.model, np.full_like(plan.policy, 1.0 / base.action_dim))
print(f"expected return: soft expert {soft:.2f}, uniform random {uniform:.2f}")
assert soft > uniform
trajectories = demos.generate(env, n_episodes=3, policy="soft", seed=0)
print("states of the first demo:", trajectories[0].states)

# %% [markdown]
# Every family works the same way. The table on each family page comes from this loop:

# %%
for env_id in mandril_envs.ENV_IDS:
    e = gym.make(env_id).unwrapped
    print(f"{env_id:40s} S={e.state_dim:5d} A={e.action_dim:2d} H={e.horizon:3d} splits={e.splits}")

# %% [markdown]
# `mandril_envs.testing.check_all` runs every reusable env check (gymnasium's `check_env`, the model,
# seeding, pickling, vector envs, renders, the seals names) and prints one line.

# %%
from mandril_envs.testing import check_all

report = check_all("mandril_envs/Bandit-K10-v0")
assert all(result.passed for result in report.results)
