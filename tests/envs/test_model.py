"""The tabular model type: construction checks, dense/sparse agreement, sampling."""

import numpy as np
import pytest

from mandril_envs.model import TabularModel, successors_from_dense
from mandril_envs.testing import switch_model


def _two_state_dense():
    """Action 0 stays, action 1 switches (the dynamics of mandril_envs.testing.switch_model)."""
    return np.array(switch_model().transition_matrix)


def test_from_dense_roundtrip_and_successor_form():
    rng = np.random.default_rng(0)
    dense = rng.dirichlet(np.full(6, 0.3), size=(6, 3))
    dense[dense < 0.05] = 0.0
    dense /= dense.sum(axis=2, keepdims=True)
    model = TabularModel.from_dense(dense, np.zeros(6), np.full(6, 1 / 6), 4)
    np.testing.assert_allclose(model.transition_matrix, dense, atol=1e-15)
    indices, probs = successors_from_dense(dense)
    assert indices.shape[2] == (dense > 0).sum(axis=2).max()
    # non-zero entries come first, padding has probability 0 and points at s
    for s in range(6):
        for a in range(3):
            nz = (dense[s, a] > 0).sum()
            assert (probs[s, a, :nz] > 0).all() and (probs[s, a, nz:] == 0).all()
            assert (indices[s, a, nz:] == s).all()


def test_matrices_are_read_only():
    model = TabularModel.from_dense(_two_state_dense(), [0.0, 1.0], [1.0, 0.0], 2)
    with pytest.raises(ValueError):
        model.reward_matrix[0] = 3.0
    with pytest.raises(ValueError):
        model.transition_matrix[0, 0, 0] = 0.5


def test_default_features_are_identity_and_sizes():
    model = TabularModel.from_dense(_two_state_dense(), [0.0, 1.0], [1.0, 0.0], 2)
    np.testing.assert_array_equal(model.feature_matrix, np.eye(2))
    assert (model.state_dim, model.action_dim, model.n_successors, model.horizon) == (2, 2, 1, 2)
    assert not model.state_action_reward


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reward_matrix": np.zeros(3)}, r"reward_matrix shape \(3,\).*\(2, 2, 2\)"),
        ({"reward_matrix": np.zeros((2, 3))}, r"reward_matrix shape \(2, 3\).*\(2, 2, 2\)"),
        ({"initial_state_dist": np.ones(3) / 3}, r"initial_state_dist shape \(3,\).*\(2,\)"),
        ({"initial_state_dist": np.array([0.7, 0.7])}, "must be a distribution"),
        ({"horizon": 0}, "horizon must be a positive int"),
        ({"horizon": 2.5}, "horizon must be a positive int"),
        ({"reward_matrix": np.array([0.0, np.nan])}, "reward_matrix must be finite"),
        ({"feature_matrix": np.zeros((3, 2))}, r"feature_matrix shape \(3, 2\)"),
    ],
)
def test_construction_errors_name_the_problem(kwargs, message):
    base = dict(transition_matrix=_two_state_dense(), reward_matrix=np.zeros(2), initial_state_dist=np.array([1.0, 0.0]), horizon=2)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        TabularModel.from_dense(**base)


def test_rows_must_sum_to_one():
    dense = _two_state_dense()
    dense[1, 0, 1] = 0.9
    with pytest.raises(ValueError, match=r"row \(s=1, a=0\) sums to 0.9"):
        TabularModel.from_dense(dense, np.zeros(2), [1.0, 0.0], 2)


def test_bad_successor_form():
    with pytest.raises(ValueError, match="successor_indices must lie in"):
        TabularModel(np.full((2, 2, 1), 5), np.ones((2, 2, 1)), np.zeros(2), [1.0, 0.0], 2)
    with pytest.raises(ValueError, match="successor_probs shape"):
        TabularModel(np.zeros((2, 2, 1), int), np.ones((2, 2, 2)), np.zeros(2), [1.0, 0.0], 2)
    with pytest.raises(ValueError, match="integer"):
        TabularModel(np.zeros((2, 2, 1)), np.ones((2, 2, 1)), np.zeros(2), [1.0, 0.0], 2)
    with pytest.raises(ValueError, match="transition_matrix must be \\(S, A, S\\)"):
        TabularModel.from_dense(np.ones((2, 2, 3)) / 3, np.zeros(2), [1.0, 0.0], 2)


def test_sample_next_state_frequencies():
    model = TabularModel(np.array([[[0, 1, 0]]]).repeat(2, 0), np.array([[[0.25, 0.75, 0.0]]]).repeat(2, 0), np.zeros(2), [1.0, 0.0], 1)
    rng = np.random.default_rng(0)
    draws = np.array([model.sample_next_state(0, 0, rng) for _ in range(20_000)])
    assert abs(draws.mean() - 0.75) < 0.02


def test_with_reward_keeps_dynamics():
    model = TabularModel.from_dense(_two_state_dense(), [0.0, 1.0], [1.0, 0.0], 2)
    lazy = model.with_reward(np.ones(2))
    np.testing.assert_array_equal(lazy.transition_matrix, _two_state_dense())
    dense = model.transition_matrix
    other = model.with_reward(np.ones((2, 2)))
    assert other.state_action_reward and other.transition_matrix is dense  # the cached dense view is shared
    np.testing.assert_array_equal(model.state_action_rewards(), [[0.0, 0.0], [1.0, 1.0]])
