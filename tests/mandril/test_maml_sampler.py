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


def test_each_task_uses_its_own_parameters_on_the_gym_backend_too():
    sampler = MultiTaskSampler("mandril_envs/Bandit-K5-v0", {"horizon": 2}, max_tasks=3, envs_per_task=4, backend="gym")
    policy = TabularSoftmaxPolicy(sampler.obs_dim, sampler.n_actions)
    tables = torch.full((5, 1, 5), -50.0, dtype=torch.float64)
    for arm in range(5):
        tables[arm, 0, arm] = 50.0
    batch = sampler.sample(policy, {"logits_table": tables}, sampler.sample_tasks(5), 6, seed=0, generator=torch.Generator().manual_seed(0))
    sampler.close()
    for arm in range(5):  # 5 tasks in chunks of 3: the task-batched params are split with the tasks
        assert torch.all(batch.actions[arm] == arm)


def test_the_model_backend_draws_the_env_s_distribution():
    """States, actions and rewards of the model backend against the exact visitation of the policy
    (from the known model) and against the gym backend, which steps the env code itself."""
    from mandril_envs.planning import state_action_visitation

    policy = make_policy("mlp", 10, 5, hidden_sizes=(4,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        policy.w1.mul_(300.0)  # far from uniform, so a wrong state or action lookup shows
    kwargs = {"horizon": 3}
    n = 1500
    batches = {}
    for backend in ("model", "gym"):
        sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", kwargs, max_tasks=2, envs_per_task=500, backend=backend)
        tasks = sampler.sample_tasks(2, "test")
        batches[backend] = sampler.sample(policy, policy.params(), tasks, n, seed=3, generator=torch.Generator().manual_seed(1))
        models = sampler.models(tasks)
        obs = torch.eye(10, dtype=torch.float64)
        with torch.no_grad():
            probs = torch.softmax(policy.logits(obs), -1).numpy()
        sampler.close()
    for backend, batch in batches.items():
        assert batch.observations.shape == (2, 3, n, 10) and torch.all(batch.mask == 1)
        for i, model in enumerate(models):
            exact = state_action_visitation(model, np.broadcast_to(probs, (3, 10, 5)))  # (H, S, A)
            states = batch.observations[i].argmax(-1).numpy()  # (T, B)
            actions = batch.actions[i].numpy()
            for t in range(3):
                freq = np.zeros((10, 5))
                np.add.at(freq, (states[t], actions[t]), 1.0 / n)
                # 5 standard errors of a frequency estimated from n draws
                assert np.all(np.abs(freq - exact[t]) <= 5 * np.sqrt(exact[t] * (1 - exact[t]) / n) + 2e-3), (backend, i, t)
            # rewards: mean r(s, a) plus unit noise, so the mean return matches the exact one
            returns = batch.episode_returns()[i].numpy()
            expected = float((exact.sum(0) * model.state_action_rewards()).sum())
            assert abs(returns.mean() - expected) < 5 * returns.std() / np.sqrt(n), backend
    rewards = batches["model"].rewards
    assert len(torch.unique(rewards)) > 1000  # noisy rewards, not the means


def test_sample_rewards_is_what_step_pays():
    import gymnasium as gym

    for env_id, kwargs in [("mandril_envs/Bandit-K5-v0", {}), ("mandril_envs/Bandit-K5-v0", {"arm_distribution": "gaussian"}),
                           ("mandril_envs/TabularMDP-v0", {}), ("mandril_envs/TabularMDP-v0", {"reward_noise": 0.0})]:
        env = gym.make(env_id, disable_env_checker=True, **kwargs).unwrapped
        env.reset(seed=7)
        state = env.state
        twin = np.random.default_rng()
        twin.bit_generator.state = env.np_random.bit_generator.state
        _, reward, *_ = env.step(2)
        mean = env.model.state_action_rewards()[state, 2]
        assert reward == env.sample_rewards(np.array([mean]), twin)[0], env_id
        draws = env.sample_rewards(np.full((2, 3), 0.25), np.random.default_rng(0))
        assert draws.shape == (2, 3) and draws.dtype == np.float64


def test_inverse_cdf_draws_by_hand():
    from mandril.maml_rl.sampler import _draw

    cdf = np.array([[0.2, 0.7, 1.0], [0.0, 1.0, 1.0]])  # the second row: all mass on entry 1, entry 2 is padding
    u = np.array([[0.0, 0.19999, 0.2, 0.69, 0.7, 0.99999]])
    np.testing.assert_array_equal(_draw(cdf[0][None, None, :].repeat(6, 1), u), [[0, 0, 1, 1, 2, 2]])
    np.testing.assert_array_equal(_draw(cdf[1][None, None, :].repeat(6, 1), u), [[1, 1, 1, 1, 1, 1]])


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        MultiTaskSampler("mandril_envs/Bandit-K5-v0", backend="fast")
