"""The batched MAML-TRPO losses against a plain per-task, per-step implementation written from the definitions."""

from __future__ import annotations

import pytest
import torch

from mandril.functional import gradient_step
from mandril.maml_rl.advantages import discounted_returns, gae, normalize
from mandril.maml_rl.baseline import LinearFeatureBaseline
from mandril.maml_rl.metalearner import MAMLTRPO, TaskData
from mandril.maml_rl.policies import expand_params, make_policy, stack_params, task_params
from mandril.maml_rl.sampler import MultiTaskSampler


def _advantages(learner, batch, i):
    """Task ``i`` 's normalised GAE advantages ``(T, B)``, one task at a time."""
    obs, rew, mask = batch.observations[i], batch.rewards[i], batch.mask[i]
    base = LinearFeatureBaseline(learner.baseline_reg)
    base.fit(obs, discounted_returns(rew, mask, learner.gamma), mask)
    return normalize(gae(rew, base.predict(obs, mask), mask, learner.gamma, learner.gae_lambda), mask)


def _step_log_probs(policy, params, obs, actions):
    """``(T, B)`` log pi(a_t | o_t) and ``(T, B, A)`` log pi(. | o_t) for one task, step by step."""
    all_lp = torch.log_softmax(policy.logits(obs, params), dim=-1)
    return all_lp.gather(-1, actions.unsqueeze(-1)).squeeze(-1), all_lp


def _reference(learner, rollouts, theta, theta_old):
    """``(L, KL)`` at ``theta`` from per-task, per-step sums with unbatched parameters (second order)."""
    policy = learner.policy
    train, valid = rollouts.train[0], rollouts.valid
    losses, kls = [], []
    for i in range(train.n_tasks):
        def phi_of(params):
            lp, _ = _step_log_probs(policy, params, train.observations[i], train.actions[i])
            adv, mask = _advantages(learner, train, i), train.mask[i]
            if learner.inner_objective == "lvc":  # pi / stop_gradient(pi), step by step
                lp = torch.exp(lp - lp.detach())
            inner = -(lp * adv * mask).sum() / mask.sum()
            return gradient_step(params, inner, learner.fast_lr)

        with torch.enable_grad():
            old_params = {k: v.detach().requires_grad_(True) for k, v in theta_old.items()}
            _, old_all = _step_log_probs(policy, {k: v.detach() for k, v in phi_of(old_params).items()}, valid.observations[i], valid.actions[i])
        lp, all_lp = _step_log_probs(policy, phi_of(theta), valid.observations[i], valid.actions[i])
        old_taken = old_all.gather(-1, valid.actions[i].unsqueeze(-1)).squeeze(-1)
        adv, mask = _advantages(learner, valid, i), valid.mask[i]
        losses.append(-(torch.exp(lp - old_taken) * adv * mask).sum() / mask.sum())
        kls.append(((old_all.exp() * (old_all - all_lp)).sum(-1) * mask).sum() / mask.sum())
    return torch.stack(losses).mean(), torch.stack(kls).mean()


@pytest.mark.parametrize("env_id, kwargs, objective", [("mandril_envs/TabularMDP-v0", {"horizon": 4}, "reinforce"),
                                                       ("mandril_envs/Bandit-K5-v0", {"horizon": 1}, "reinforce"),
                                                       ("mandril_envs/TabularMDP-v0", {"horizon": 4}, "lvc")])
def test_batched_surrogate_kl_and_meta_gradient_equal_the_per_task_per_step_definitions(env_id, kwargs, objective):
    sampler = MultiTaskSampler(env_id, kwargs, max_tasks=3)
    gen = torch.Generator().manual_seed(0)
    policy = make_policy("mlp", sampler.obs_dim, sampler.n_actions, hidden_sizes=(6,), generator=gen)
    learner = MAMLTRPO(policy, fast_lr=0.7, gae_lambda=0.8, gamma=0.9, inner_objective=objective)
    rollouts = learner.sample(sampler, sampler.sample_tasks(3), 7, seeds=[0, 1], generator=gen)
    sampler.close()
    theta_old = {k: v.detach() for k, v in policy.params().items()}
    old = learner._old_log_probs(rollouts)
    # away from theta_old, so the ratios and the KL are not trivially 1 and 0
    point = {k: (v + 0.2 * torch.randn(v.shape, generator=gen, dtype=v.dtype)).requires_grad_(True) for k, v in theta_old.items()}
    loss, kl = learner.surrogate(point, rollouts, old)
    ref_loss, ref_kl = _reference(learner, rollouts, point, theta_old)
    assert kl > 1e-4 and abs(loss) > 1e-4
    torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kl, ref_kl, rtol=1e-10, atol=1e-12)
    grads = torch.autograd.grad(loss + 3 * kl, list(point.values()))
    ref_grads = torch.autograd.grad(ref_loss + 3 * ref_kl, list(point.values()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
    # the adapted parameters that sampled the post-update episodes are each task's own phi_i(theta_old)
    for i in range(3):
        leaves = {k: v.clone().requires_grad_(True) for k, v in theta_old.items()}
        lp, _ = _step_log_probs(policy, leaves, rollouts.train[0].observations[i], rollouts.train[0].actions[i])
        adv, mask = _advantages(learner, rollouts.train[0], i), rollouts.train[0].mask[i]
        phi = gradient_step(leaves, -(lp * adv * mask).sum() / mask.sum(), learner.fast_lr, first_order=True)
        for k in phi:
            torch.testing.assert_close(rollouts.adapted[k][i], phi[k].detach(), rtol=1e-10, atol=1e-12)


def test_task_data_sums_by_hand():
    # one task, 4 steps in 2 distinct observations; A = 3 actions; the last step is padding
    obs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)  # (1, T=4, B=1, D=2)
    actions = torch.tensor([[[2], [0], [2], [1]]])
    adv = torch.tensor([[[0.5], [-1.0], [0.25], [9.0]]], dtype=torch.float64)
    mask = torch.tensor([[[1.0], [1.0], [1.0], [0.0]]], dtype=torch.float64)
    data = TaskData.from_steps(obs, actions, adv, mask, n_actions=3)
    assert data.observations.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]  # sorted distinct rows
    assert data.counts.tolist() == [[1.0, 2.0]]
    assert data.advantage_sums.tolist() == [[[-1.0, 0.0, 0.0], [0.0, 0.0, 0.75]]]
    assert data.n_steps.tolist() == [3.0]


def test_task_batched_policies_equal_one_task_at_a_time():
    gen = torch.Generator().manual_seed(1)
    for kind in ("mlp", "tabular"):
        policy = make_policy(kind, 4, 3, hidden_sizes=(5, 2), generator=gen)
        per_task = [{k: v.detach() + 0.1 * i * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in policy.params().items()}
                    for i in range(3)]
        batched = stack_params(per_task)
        assert policy.is_task_batched(batched) and not policy.is_task_batched(per_task[0])
        obs = torch.randn(3, 2, 7, 4, generator=gen, dtype=torch.float64)
        out = policy.logits(obs, batched)
        assert out.shape == (3, 2, 7, 3)
        for i in range(3):
            torch.testing.assert_close(out[i], policy.logits(obs[i], per_task[i]), rtol=1e-12, atol=1e-12)
            assert all(torch.equal(task_params(batched, i)[k], per_task[i][k]) for k in batched)
        expanded = expand_params(per_task[0], 3)
        torch.testing.assert_close(policy.logits(obs, expanded), policy.logits(obs, per_task[0]))
        with pytest.raises(ValueError, match="keys"):
            policy.is_task_batched({"nope": torch.zeros(1)})
        with pytest.raises(ValueError, match="N=3"):
            policy.logits(obs[:2], batched)


def _mdp_rollouts(policy_kind, fast_lr=2.0, hidden=(4,), n_tasks=3, episodes=30, seed=0):
    sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", {"horizon": 3}, max_tasks=n_tasks)
    gen = torch.Generator().manual_seed(seed)
    policy = make_policy(policy_kind, sampler.obs_dim, sampler.n_actions, hidden_sizes=hidden, generator=gen)
    learner = MAMLTRPO(policy, fast_lr=fast_lr)
    rollouts = learner.sample(sampler, sampler.sample_tasks(n_tasks), episodes, seeds=[0, 1], generator=gen)
    sampler.close()
    return learner, rollouts


def test_the_lvc_inner_objective_has_the_reinforce_gradient_and_the_sampling_term_in_its_hessian():
    """For a logit table, d log pi(a|u) / d table[u] = e_a - pi(.|u): the Hessians of the two inner
    objectives differ by sum_{u,a} S[u,a] (e_a - pi_u)(e_a - pi_u)^T / n, block by block."""
    learner, rollouts = _mdp_rollouts("tabular", n_tasks=1)
    data = rollouts.train_data[0]
    table = (0.3 * torch.randn(10, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)).requires_grad_(True)

    def loss(kind, t):
        learner.inner_objective = kind
        return learner.inner_loss({"logits_table": t}, data).sum()

    g_r = torch.autograd.grad(loss("reinforce", table), table)[0]
    g_l = torch.autograd.grad(loss("lvc", table), table)[0]
    torch.testing.assert_close(g_l, g_r, rtol=1e-12, atol=1e-14)
    h_r = torch.autograd.functional.hessian(lambda t: loss("reinforce", t), table).reshape(50, 50)
    h_l = torch.autograd.functional.hessian(lambda t: loss("lvc", t), table).reshape(50, 50)
    probs = torch.softmax(table.detach(), -1)
    extra = torch.zeros(50, 50, dtype=torch.float64)
    states = data.observations[0].argmax(-1)
    for u, s in enumerate(states.tolist()):
        for a in range(5):
            d = torch.eye(5, dtype=torch.float64)[a] - probs[s]
            extra[s * 5 : s * 5 + 5, s * 5 : s * 5 + 5] += -data.advantage_sums[0, u, a] * torch.outer(d, d) / data.n_steps[0]
    assert extra.abs().max() > 1e-3
    torch.testing.assert_close(h_l - h_r, extra, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="inner_objective"):
        MAMLTRPO(learner.policy, inner_objective="dice")


def test_the_exploration_entropy_bonus_is_beta_times_the_mean_entropy_of_the_exploration_policy():
    learner, rollouts = _mdp_rollouts("mlp", n_tasks=2)
    old = learner._old_log_probs(rollouts)
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in learner.policy.params().items()}
    plain, kl = learner.surrogate(theta, rollouts, old)
    learner.exploration_entropy = 0.25
    bonus, kl_again = learner.surrogate(theta, rollouts, old)
    # by hand, step by step: the entropy of pi_theta at every exploration step, averaged per task, then over tasks
    train = rollouts.train[0]
    log_probs = torch.log_softmax(learner.policy.logits(train.observations, theta), -1)  # (N, T, B, A)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    expected = ((entropy * train.mask).sum((1, 2)) / train.mask.sum((1, 2))).mean()
    torch.testing.assert_close(bonus, plain - 0.25 * expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kl_again, kl)
    grad = torch.autograd.grad(bonus - plain, theta["w0"])[0]
    torch.testing.assert_close(grad, torch.autograd.grad(-0.25 * expected, theta["w0"])[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="exploration_entropy"):
        MAMLTRPO(learner.policy, exploration_entropy=-1.0)
