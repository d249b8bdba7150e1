"""Linear feature baseline (closed-form ridge), returns, GAE and normalisation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mandril.maml_rl.baseline as baseline_module
from mandril.maml_rl.advantages import discounted_returns, gae, normalize
from mandril.maml_rl.baseline import LinearFeatureBaseline, baseline_features


def _batch(seed=0, t=6, b=5, d=3):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(t, b, d, generator=g, dtype=torch.float64)
    returns = torch.randn(t, b, generator=g, dtype=torch.float64)
    mask = torch.ones(t, b, dtype=torch.float64)
    mask[4:, 1] = 0.0  # a shorter episode
    return obs, returns * mask, mask


def test_features_are_obs_obs2_time_polynomial_and_one_zeroed_on_padding():
    obs, _, mask = _batch()
    feats = baseline_features(obs, mask)
    assert feats.shape == (6, 5, 2 * 3 + 4)
    t = 2
    expected = torch.cat([obs[t, 0], obs[t, 0] ** 2, torch.tensor([t / 6, (t / 6) ** 2, (t / 6) ** 3, 1.0], dtype=torch.float64)])
    torch.testing.assert_close(feats[t, 0], expected)
    assert torch.all(feats[4:, 1] == 0)


def test_fit_matches_closed_form_ridge_solution():
    obs, returns, mask = _batch()
    reg = 1e-3
    # the closed form, built independently in numpy
    t_len, b, d = obs.shape
    o = obs.numpy()
    tt = np.broadcast_to((np.arange(t_len) / t_len)[:, None, None], (t_len, b, 1))
    x = np.concatenate([o, o**2, tt, tt**2, tt**3, np.ones_like(tt)], axis=2) * mask.numpy()[..., None]
    x = x.reshape(-1, 2 * d + 4)
    y = returns.numpy().reshape(-1)
    expected = np.linalg.solve(x.T @ x + reg * np.eye(x.shape[1]), x.T @ y)
    base = LinearFeatureBaseline(reg_coeff=reg)
    weight = base.fit(obs, returns, mask)
    np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(base.predict(obs, mask).numpy().reshape(-1), x @ expected, rtol=1e-8, atol=1e-10)
    assert base.last_reg == reg


def test_fit_raises_the_ridge_and_retries_when_the_solve_is_not_finite(monkeypatch):
    obs, returns, mask = _batch()
    real = torch.linalg.lstsq
    seen = []

    class _Linalg:
        LinAlgError = torch.linalg.LinAlgError

        @staticmethod
        def lstsq(a, b, driver=None):
            reg = float(a[0, -1, -1] - (baseline_features(obs, mask)[..., -1] ** 2).sum())
            seen.append(reg)
            out = real(a, b, driver=driver)
            if reg < 1e-3:  # pretend the solve blew up for small ridges
                return SimpleNamespace(solution=torch.full_like(out.solution, float("nan")))
            return out

    monkeypatch.setattr(baseline_module.torch, "linalg", _Linalg)
    base = LinearFeatureBaseline(reg_coeff=1e-5)
    weight = base.fit(obs, returns, mask)
    assert torch.isfinite(weight).all()
    assert seen == pytest.approx([1e-5, 1e-4, 1e-3], rel=1e-6)
    assert base.last_reg == pytest.approx(1e-3)
    with pytest.raises(FloatingPointError, match="not finite"):
        LinearFeatureBaseline(reg_coeff=1e-9, max_tries=2).fit(obs, returns, mask)


def test_a_batch_of_tasks_is_fitted_task_by_task_and_only_failed_tasks_are_retried(monkeypatch):
    obs_a, returns_a, mask_a = _batch(seed=0)
    obs_b, returns_b, mask_b = _batch(seed=1)
    obs, returns, mask = torch.stack([obs_a, obs_b]), torch.stack([returns_a, returns_b]), torch.stack([mask_a, mask_b])
    # without failures: the batched fit is each task's own fit
    together = LinearFeatureBaseline(reg_coeff=1e-3).fit(obs, returns, mask)
    assert together.shape == (2, 2 * 3 + 4)
    for i, (o, r, m) in enumerate([(obs_a, returns_a, mask_a), (obs_b, returns_b, mask_b)]):
        torch.testing.assert_close(together[i], LinearFeatureBaseline(reg_coeff=1e-3).fit(o, r, m), rtol=1e-10, atol=1e-12)
    predicted = LinearFeatureBaseline(reg_coeff=1e-3)
    predicted.fit(obs, returns, mask)
    torch.testing.assert_close(predicted.predict(obs, mask)[1], LinearFeatureBaseline(1e-3).predict(obs_b, mask_b, together[1]))
    # task 0's solve "fails" below a ridge of 1e-3: only task 0 is solved again, with a larger ridge
    real = torch.linalg.lstsq
    gram_a00 = float((baseline_features(obs_a, mask_a)[..., 0] ** 2).sum())
    assert abs(gram_a00 - float((baseline_features(obs_b, mask_b)[..., 0] ** 2).sum())) > 0.1  # the tasks can be told apart
    calls = []

    class _Linalg:
        LinAlgError = torch.linalg.LinAlgError

        @staticmethod
        def lstsq(a, b, driver=None):
            out = real(a, b, driver=driver).solution.clone()
            is_a = [abs(float(a[i, 0, 0]) - gram_a00) < 0.01 for i in range(a.shape[0])]
            reg = float(a[0, -1, -1] - (mask_a.sum() if is_a[0] else mask_b.sum()))
            calls.append((a.shape[0], round(reg, 9)))
            for i, flag in enumerate(is_a):
                if flag and reg < 1e-3 * 0.99:
                    out[i] = float("nan")
            return SimpleNamespace(solution=out)

    monkeypatch.setattr(baseline_module.torch, "linalg", _Linalg)
    weight = LinearFeatureBaseline(reg_coeff=1e-5).fit(obs, returns, mask)
    monkeypatch.undo()
    assert calls == [(2, 1e-5), (1, 1e-4), (1, 1e-3)]
    torch.testing.assert_close(weight[0], LinearFeatureBaseline(reg_coeff=1e-3).fit(obs_a, returns_a, mask_a), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(weight[1], LinearFeatureBaseline(reg_coeff=1e-5).fit(obs_b, returns_b, mask_b), rtol=1e-10, atol=1e-12)


def test_bad_baseline_arguments_are_refused():
    with pytest.raises(ValueError, match="reg_coeff"):
        LinearFeatureBaseline(reg_coeff=0.0)
    with pytest.raises(ValueError, match="observations must be"):
        baseline_features(torch.zeros(3, 2), torch.ones(3, 2))
    with pytest.raises(RuntimeError, match="fit"):
        LinearFeatureBaseline().predict(torch.zeros(2, 2, 1), torch.ones(2, 2))


def test_discounted_returns_and_gae_by_hand():
    rewards = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    mask = torch.ones(3, 1, dtype=torch.float64)
    gamma = 0.5
    torch.testing.assert_close(discounted_returns(rewards, mask, gamma).reshape(-1),
                               torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0], dtype=torch.float64))
    values = torch.tensor([[0.5], [1.0], [2.0]], dtype=torch.float64)
    # lambda = 1: Monte-Carlo return minus the value
    adv1 = gae(rewards, values, mask, gamma, 1.0)
    torch.testing.assert_close(adv1, discounted_returns(rewards, mask, gamma) - values)
    # lambda = 0: one-step TD residuals, V after the last step is 0
    adv0 = gae(rewards, values, mask, gamma, 0.0).reshape(-1)
    torch.testing.assert_close(adv0, torch.tensor([1 + 0.5 * 1.0 - 0.5, 2 + 0.5 * 2.0 - 1.0, 3 - 2.0], dtype=torch.float64))
    # padding: a masked step contributes nothing and gets no advantage
    mask2 = torch.tensor([[1.0], [1.0], [0.0]], dtype=torch.float64)
    adv = gae(rewards * mask2, values, mask2, gamma, 1.0).reshape(-1)
    torch.testing.assert_close(adv, torch.tensor([1 + 0.5 * 2 - 0.5, 2 - 1.0, 0.0], dtype=torch.float64))


def test_normalize_uses_only_unmasked_entries():
    x = torch.tensor([[1.0, 2.0], [3.0, 100.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    out = normalize(x, mask)
    real = out[mask.bool()]
    assert real.mean().abs() < 1e-12
    assert (real.pow(2).mean() - 1).abs() < 1e-6
    assert out[1, 1] == 0


def test_fit_is_reproducible_whatever_the_solver_did_before():
    """MKL's default lstsq driver (gelsy) depends on earlier calls; the fit must not."""
    obs, returns, mask = _batch(seed=1, t=10, b=8, d=5)
    first = LinearFeatureBaseline().fit(obs, returns, mask)
    g = torch.Generator().manual_seed(0)
    for n in range(3, 40, 3):
        z = torch.randn(n + 4, n, generator=g, dtype=torch.float64)
        torch.linalg.lstsq(z.T @ z + torch.eye(n, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64))
        assert torch.equal(LinearFeatureBaseline().fit(obs, returns, mask), first)
