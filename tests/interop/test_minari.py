"""Datasets export to Minari (main environment, where the minari extra is installed)."""

import numpy as np

from mandril_envs.dataset import collect


def test_dataset_exports_to_minari_and_rebuilds_the_task(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset = collect("mandril_envs/GridWorld-v0", 2, 3, split="test", demo_seed=4)
    exported = dataset.to_minari("mandril-gridworld-test-v0", 1)
    assert exported.total_episodes == 3 and exported.total_steps == 3 * dataset.horizon
    for m, episode in enumerate(exported.iterate_episodes()):
        np.testing.assert_array_equal(episode.actions, dataset.actions[1, m])
        np.testing.assert_array_equal(episode.observations, dataset.states[1, m])
        np.testing.assert_allclose(episode.rewards, dataset.rewards[1, m])
        assert episode.truncations[-1] and not episode.terminations.any()
    recovered = exported.recover_environment()
    np.testing.assert_array_equal(recovered.unwrapped.reward_matrix, dataset.make_env(1).unwrapped.reward_matrix)
