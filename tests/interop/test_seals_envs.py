"""seals' own reusable env checks (``seals.testing.envs``) on every registered id (main environment).

Two choices make them pass, both documented in ``TabularTaskEnv.step`` and ``mandril_envs.testing``:
steps after the truncating step are answered gracefully (they stay in ``s_H``, pay 0 and warn once),
and the ids whose observations do not depend on the seed (the bandits: one state) are declared to
seals' ``test_seed`` as deterministic by ``testing.deterministic_observation_ids``.
"""

import gymnasium as gym
import pytest

seals_envs = pytest.importorskip("seals.testing.envs")

import mandril_envs  # noqa: E402
from mandril_envs import testing  # noqa: E402

IDS = list(mandril_envs.ENV_IDS)
DETERMINISTIC = testing.deterministic_observation_ids(IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_seals_rollout_schema_every_obs_type(env_id):
    for obs_type in type(gym.make(env_id).unwrapped).obs_types:
        env = gym.make(env_id, obs_type=obs_type)
        with pytest.warns(UserWarning, match="after the episode was truncated"):
            seals_envs.test_rollout_schema(env, steps_after_terminated=10)


@pytest.mark.parametrize("env_id", IDS)
def test_seals_seed(env_id):
    seals_envs.test_seed(gym.make(env_id), env_id, DETERMINISTIC)


def test_seals_seed_fails_on_a_bandit_not_declared_deterministic():
    with pytest.raises(AssertionError):
        seals_envs.test_seed(gym.make("mandril_envs/Bandit-v0"), "mandril_envs/Bandit-v0", [], num_seeds=5)


@pytest.mark.parametrize("env_id", IDS)
def test_seals_premature_step(env_id):
    seals_envs.test_premature_step(gym.make(env_id).unwrapped, skip_fn=pytest.skip, raises_fn=pytest.raises)
