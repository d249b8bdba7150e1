# %% [markdown]
# # Datasets: npz files, Minari and imitation trajectories
#
# `collect` rolls experts out on many tasks and keeps every task's parameters, so the ground truth can be
# rebuilt for scoring; `DemoDataset.save`/`load` write and check an `.npz` file.

# %%
import numpy as np

from mandril_envs.dataset import DemoDataset, collect

dataset = collect("mandril_envs/TabularMDP-Linear-v0", n_tasks=4, n_demos=3, split="test")
path = dataset.save("tabular.npz")
loaded = DemoDataset.load(path)  # rebuilds every task's model and checks every transition and reward
print(loaded.env_id, "states", loaded.states.shape, "actions", loaded.actions.shape)
assert np.array_equal(loaded.states, dataset.states)

# %% [markdown]
# Each task comes back as an env with its exact model:

# %%
env = loaded.make_env(2)
print(env.unwrapped.task.split, env.unwrapped.task.index, env.unwrapped.reward_matrix.round(2))

# %% [markdown]
# The same from the command line (`mandril-envs demos generate --help` lists every option):
#
# ```bash
# mandril-envs demos generate --env mandril_envs/GridWorld-v0 --tasks 100 --demos 20 --out gw.npz
# mandril-envs demos info gw.npz
# ```
#
# A damaged or edited file is refused with one line:

# %%
data = dict(np.load(path, allow_pickle=False))
data["actions"] = data["actions"].copy()
data["actions"][0, 0, 0] = 99  # an action that does not exist
np.savez("edited.npz", **data)
try:
    DemoDataset.load("edited.npz")
except ValueError as error:
    print("refused:", str(error)[:160])
else:
    raise AssertionError("an edited dataset was accepted")

# %% [markdown]
# ## Minari
#
# `to_minari(dataset_id, index)` exports one task's demos to the local Minari store (here a temporary
# folder: `MINARI_DATASETS_PATH`), with the task in the env spec so `recover_environment()` rebuilds it.

# %%
import minari

bandits = collect("mandril_envs/Bandit-K10-v0", n_tasks=3, n_demos=5, split="test")
bandits.to_minari("bandit-expert-v0", 2)
stored = minari.load_dataset("bandit-expert-v0")
recovered = stored.recover_environment()
print(stored.total_episodes, "episodes; arm means", recovered.unwrapped.arm_means.round(2))
assert np.allclose(recovered.unwrapped.arm_means, bandits.make_env(2).unwrapped.arm_means)
print("state indices of episode 0:", next(iter(stored.iterate_episodes())).infos["state"])

# %% [markdown]
# ## imitation
#
# `to_imitation(i)` gives task `i`'s demos as imitation `TrajectoryWithRew` objects (what its BC, AIRL,
# GAIL and MCE IRL take).

# %%
trajectories = dataset.to_imitation(0)
print(type(trajectories[0]).__name__, len(trajectories), "trajectories; obs", trajectories[0].obs.shape, "acts", trajectories[0].acts.shape)
assert len(trajectories) == 3
