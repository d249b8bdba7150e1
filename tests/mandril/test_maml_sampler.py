"""The vectorised multi-task sampler and the policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mandril.functional import gradient_step
from mandril.maml_rl.policies import CategoricalMLPPolicy, TabularSoftmaxPolicy, make_policy
from mandril.maml_rl.sampler import MultiTaskSampler, encode_observations
from gymnasium import spaces


@pytest.fixture(scope="module")
def mdp_sampler():
    sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", {"horizon": 4}, max_tasks=2, envs_per_task=3)
    yield sampler
    sampler.close()


def test_batch_shapes_masks_and_episode_rounds(mdp_sampler):
    policy = TabularSoftmaxPolicy(mdp_sampler.obs_dim, mdp_sampler.n_actions)
    tasks = mdp_sampler.sample_tasks(3)  # more tasks than max_tasks: processed in two chunks
    batch = mdp_sampler.sample(policy, policy.params(), tasks, 7, seed=1, generator=torch.Generator().manual_seed(0))
    assert batch.observations.shape == (3, 4, 7, 10)
    assert batch.actions.shape == batch.rewards.shape == batch.mask.shape == (3, 4, 7)
    assert torch.all(batch.mask == 1)  # fixed horizon, never terminated
    assert torch.all(batch.observations.sum(-1) == 1)  # one-hot states
    assert batch.n_steps() == 3 * 4 * 7
    assert batch.episode_returns().shape == (3, 7)
    assert batch.tasks == tasks
    # the first state follows initial_state_dist (uniform): all 10 states show up over 21 episodes
    assert (batch.observations[:, 0].sum(dim=(0, 1)) > 0).sum() >= 7


def test_same_seed_same_batch_and_different_seed_different_batch(mdp_sampler):
    policy = make_policy("mlp", mdp_sampler.obs_dim, mdp_sampler.n_actions, generator=torch.Generator().manual_seed(0))
    tasks = mdp_sampler.sample_tasks(2)
    a = mdp_sampler.sample(policy, policy.params(), tasks, 5, seed=11, generator=torch.Generator().manual_seed(3))
    b = mdp_sampler.sample(policy, policy.params(), tasks, 5, seed=11, generator=torch.Generator().manual_seed(3))
    c = mdp_sampler.sample(policy, policy.params(), tasks, 5, seed=12, generator=torch.Generator().manual_seed(3))
    for name in ("observations", "actions", "rewards", "mask"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.rewards, c.rewards)


def test_each_task_uses_its_own_parameters():
    sampler = MultiTaskSampler("mandril_envs/Bandit-K5-v0", {"horizon": 3}, max_tasks=5, envs_per_task=4)
    policy = TabularSoftmaxPolicy(sampler.obs_dim, sampler.n_actions)
    params = []
    for arm in range(5):
        table = torch.full((1, 5), -50.0, dtype=torch.float64)
        table[0, arm] = 50.0
        params.append({"logits_table": table})
    tasks = sampler.sample_tasks(5)
    batch = sampler.sample(policy, params, tasks, 6, seed=0, generator=torch.Generator().manual_seed(0))
    sampler.close()
    for arm in range(5):
        assert torch.all(batch.actions[arm] == arm)
    # Bernoulli rewards; the mean per task follows that arm's mean
    assert set(batch.rewards.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="one dict per task"):
        MultiTaskSampler("mandril_envs/Bandit-K5-v0").sample(policy, params[:2], tasks, 1, seed=0, generator=torch.Generator())


def test_non_discrete_action_spaces_and_non_task_envs_are_refused():
    with pytest.raises(TypeError, match="Discrete action space"):
        MultiTaskSampler("Pendulum-v1")
    with pytest.raises(TypeError, match="task family"):
        MultiTaskSampler("CartPole-v1")
    with pytest.raises(ValueError, match="cannot be made"):
        MultiTaskSampler("mandril_envs/NoSuchEnv-v0")
    with pytest.raises(ValueError, match="vector"):
        MultiTaskSampler("mandril_envs/Bandit-K5-v0", vector="threads")


def test_encode_observations():
    onehot = encode_observations(spaces.Discrete(3), np.array([2, 0]), torch.float64)
    assert onehot.tolist() == [[0, 0, 1], [1, 0, 0]]
    box = encode_observations(spaces.Box(0, 1, (2, 2)), np.ones((4, 2, 2)), torch.float32)
    assert box.shape == (4, 4) and box.dtype == torch.float32


def test_policy_forward_takes_explicit_params_and_keeps_the_graph():
    gen = torch.Generator().manual_seed(0)
    policy = CategoricalMLPPolicy(3, 4, (5,), generator=gen)
    obs = torch.eye(3, dtype=torch.float64)
    theta = policy.params()
    assert set(theta) == {"w0", "b0", "w1", "b1"}
    torch.testing.assert_close(policy(obs).probs, policy(obs, theta).probs)
    # an adapted dict is a function of theta: second derivatives exist
    loss = -policy(obs, theta).log_prob(torch.tensor([0, 1, 2])).mean()
    phi = gradient_step(theta, loss, 0.5)
    assert not torch.allclose(policy(obs, phi).probs, policy(obs).probs)
    outer = policy(obs, phi).log_prob(torch.tensor([3, 3, 3])).sum()
    grads = torch.autograd.grad(outer, list(theta.values()))
    assert all(torch.isfinite(g).all() for g in grads)
    # initialisation comes only from the generator
    again = CategoricalMLPPolicy(3, 4, (5,), generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), again.parameters()))
    other = CategoricalMLPPolicy(3, 4, (5,), generator=torch.Generator().manual_seed(1))
    assert not torch.equal(policy.w0, other.w0)
    with pytest.raises(ValueError, match="last dimension"):
        policy(torch.zeros(2, 5, dtype=torch.float64))


def test_tabular_policy_is_a_logit_table():
    policy = TabularSoftmaxPolicy(4, 3)
    table = torch.arange(12.0, dtype=torch.float64).reshape(4, 3)
    obs = torch.eye(4, dtype=torch.float64)[[2, 0]]
    torch.testing.assert_close(policy.logits(obs, {"logits_table": table}), table[[2, 0]])
    torch.testing.assert_close(policy(obs).probs, torch.full((2, 3), 1 / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="kind"):
        make_policy("rnn", 4, 3, generator=torch.Generator())


def test_async_vector_env_gives_the_same_episodes_as_sync():
    batches = []
    for vector in ("sync", "async"):
        sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", {"horizon": 3}, max_tasks=2, envs_per_task=2, vector=vector)
        policy = TabularSoftmaxPolicy(sampler.obs_dim, sampler.n_actions)
        tasks = sampler.sample_tasks(2)
        batches.append(sampler.sample(policy, policy.params(), tasks, 3, seed=5, generator=torch.Generator().manual_seed(1)))
        sampler.close()
    for name in ("observations", "actions", "rewards", "mask"):
        assert torch.equal(getattr(batches[0], name), getattr(batches[1], name))
