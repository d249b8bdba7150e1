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


@pytest.mark.parametrize("env_id, kwargs", [("mandril_envs/TabularMDP-v0", {"horizon": 4}), ("mandril_envs/Bandit-K5-v0", {"horizon": 1})])
def test_batched_surrogate_kl_and_meta_gradient_equal_the_per_task_per_step_definitions(env_id, kwargs):
    sampler = MultiTaskSampler(env_id, kwargs, max_tasks=3)
    gen = torch.Generator().manual_seed(0)
    policy = make_policy("mlp", sampler.obs_dim, sampler.n_actions, hidden_sizes=(6,), generator=gen)
    learner = MAMLTRPO(policy, fast_lr=0.7, gae_lambda=0.8, gamma=0.9)
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


def _bandit_rollouts(policy_kind, inner_max_kl, fast_lr=2.0, hidden=(4,), n_tasks=3, episodes=30, seed=0):
    sampler = MultiTaskSampler("mandril_envs/TabularMDP-v0", {"horizon": 3}, max_tasks=n_tasks)
    gen = torch.Generator().manual_seed(seed)
    policy = make_policy(policy_kind, sampler.obs_dim, sampler.n_actions, hidden_sizes=hidden, generator=gen)
    learner = MAMLTRPO(policy, fast_lr=fast_lr, inner_max_kl=inner_max_kl)
    rollouts = learner.sample(sampler, sampler.sample_tasks(n_tasks), episodes, seeds=[0, 1], generator=gen)
    sampler.close()
    return learner, rollouts


def test_the_inner_trust_region_by_hand_on_a_logit_table():
    """Tabular policy: J_u g is g's row u, so g^T F g is a sum of variances under pi; the step is cut to delta."""
    learner, rollouts = _bandit_rollouts("tabular", inner_max_kl=1.0, n_tasks=4)
    data = rollouts.train_data[0]
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in learner.policy.params().items()}
    expanded = expand_params(theta, data.n_tasks)
    grad = torch.autograd.grad(learner.inner_loss(expanded, data).sum(), expanded["logits_table"])[0]  # (N, S, A)
    probs = torch.softmax(learner.log_probs(expanded, data), dim=-1).detach()  # (N, U, A)
    rows = data.observations.argmax(-1)  # (N, U): the state of each distinct observation
    g_rows = torch.stack([grad[i, rows[i]] for i in range(data.n_tasks)])  # (N, U, A)
    variance = (probs * (g_rows - (probs * g_rows).sum(-1, keepdim=True)) ** 2).sum(-1)
    quad = (variance * data.counts).sum(-1) / data.n_steps
    predicted = 0.5 * learner.fast_lr**2 * quad
    learner.inner_max_kl = delta = float(predicted.median())
    assert (predicted > delta).any() and (predicted < delta).any()  # the bound binds for some tasks, not for others
    factor = torch.clamp(delta / predicted, max=1.0).sqrt()
    expected = theta["logits_table"].detach() - learner.fast_lr * factor[:, None, None] * grad
    phi = learner.adapt(theta, [data])
    torch.testing.assert_close(phi["logits_table"].detach(), expected, rtol=1e-10, atol=1e-12)
    # a bound that never binds leaves the plain step
    learner.inner_max_kl = 1e9
    plain = learner.adapt(theta, [data])["logits_table"].detach()
    torch.testing.assert_close(plain, theta["logits_table"].detach() - learner.fast_lr * grad, rtol=1e-12, atol=1e-12)


def test_the_inner_trust_region_bounds_the_true_kl_of_an_mlp_step():
    """For a small bound the second-order model is accurate: the actual mean KL of the step is delta."""
    delta = 1e-4
    learner, rollouts = _bandit_rollouts("mlp", inner_max_kl=delta, fast_lr=5.0)
    data = rollouts.train_data[0]
    theta = {k: v.detach() for k, v in learner.policy.params().items()}
    phi = learner.adapt({k: v.clone().requires_grad_(True) for k, v in theta.items()}, [data], first_order=True)
    before = learner.log_probs(theta, data)
    after = learner.log_probs({k: v.detach() for k, v in phi.items()}, data)
    kl = ((before.exp() * (before - after)).sum(-1) * data.counts).sum(-1) / data.n_steps
    torch.testing.assert_close(kl, torch.full_like(kl, delta), rtol=0.05, atol=0.0)


def test_the_meta_gradient_through_the_inner_trust_region_matches_finite_differences():
    learner, rollouts = _bandit_rollouts("mlp", inner_max_kl=0.002, fast_lr=5.0, hidden=(3,), n_tasks=2, episodes=12)
    old = learner._old_log_probs(rollouts)
    theta = {k: v.detach() for k, v in learner.policy.params().items()}
    # the bound binds for both tasks here, so the factor's own derivative is part of the meta-gradient
    expanded = expand_params({k: v.clone().requires_grad_(True) for k, v in theta.items()}, 2)
    inner = dict(zip(expanded, torch.autograd.grad(learner.inner_loss(expanded, rollouts.train_data[0]).sum(), list(expanded.values()))))
    cut = learner.inner_trust_region(rollouts.train_data[0])(expanded, inner)
    assert all(float(cut["w0"][i].norm() / inner["w0"][i].norm()) < 0.9 for i in range(2))
    leaves = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    loss, kl = learner.surrogate(leaves, rollouts, old)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    gen = torch.Generator().manual_seed(3)
    eps = 1e-6
    for _ in range(3):
        direction = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in theta.items()}
        with torch.enable_grad():
            plus = learner.surrogate({k: (theta[k] + eps * direction[k]).requires_grad_(True) for k in theta}, rollouts, old)[0]
            minus = learner.surrogate({k: (theta[k] - eps * direction[k]).requires_grad_(True) for k in theta}, rollouts, old)[0]
        numeric = float((plus - minus).detach() / (2 * eps))
        analytic = float(sum((g * direction[k]).sum() for g, k in zip(grads, theta)))
        assert abs(numeric) > 1e-4 and numeric == pytest.approx(analytic, rel=1e-5)


def test_the_lvc_inner_objective_has_the_reinforce_gradient_and_the_sampling_term_in_its_hessian():
    """For a logit table, d log pi(a|u) / d table[u] = e_a - pi(.|u): the Hessians of the two inner
    objectives differ by sum_{u,a} S[u,a] (e_a - pi_u)(e_a - pi_u)^T / n, block by block."""
    learner, rollouts = _bandit_rollouts("tabular", inner_max_kl=0.0, n_tasks=1)
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
