"""A GridWorld whose task intent is continuous: terrain preferences, goal values, obstacle penalties."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from mandril_envs.envs.gridworld import GridWorldEnv, _combination_is_test, check_sprite_split, grid_config, sprite_appearance
from mandril_envs.envs.intent import LinearIntent
from mandril_envs.model import TabularModel
from mandril_envs.priors import RewardPrior
from mandril_envs.sizes import ModelShape
from mandril_envs.tasks import TaskLike
from mandril_envs.validation import check_float, check_int

__all__ = ["GridWorldIntentEnv", "sprite_kind_is_goal"]

_GOAL_RING = np.array([235, 195, 40], np.uint8)
_OBSTACLE_RING = np.array([25, 25, 25], np.uint8)


def sprite_kind_is_goal(sprite_type: int, feature_dim: int) -> bool:
    """Whether a sprite type is a goal sprite (else an obstacle): the first entry of its appearance vector is >= 0."""
    return bool(sprite_appearance(sprite_type, feature_dim)[0][0] >= 0.0)


class GridWorldIntentEnv(GridWorldEnv):
    """A SpriteWorld-like grid where each task has its own terrain preferences, goal values and obstacle penalties.

    ## Description
    The grid, moves, sprite pool, appearances, features, map and RGB views of ``GridWorld-v0``
    (:class:`GridWorldEnv`), with an intent that is a vector of numbers rather than a choice of
    goal. Each task places ``n_goals`` goal sprites and ``n_obstacles`` obstacle sprites on a map
    of ``len(terrain_rewards)`` terrain types. A sprite type's kind is part of its appearance
    (goal if the first entry of its appearance vector is >= 0, else obstacle; the RGB map rings
    goals in gold and obstacles in black), so the map shows what is where. The task's intent is
    what it is all worth: a weight per terrain type, a value per goal sprite, a penalty per
    obstacle. They are drawn around a mean shared by every task (a prior exists to be learned);
    ``terrain_spread``, ``goal_spread`` and ``obstacle_spread`` set how far tasks spread around
    it (0: every task has the mean intent). A sprite's mean value depends on its appearance
    through a shared linear map (``appearance_slope``), so the prior carries over to sprites never
    seen in training. There is no termination: an agent collects a goal's value for every step it
    stays on it, so it trades a nearer goal against a better one, and a path over preferred terrain
    against a shorter one.

    ## Spaces
    As ``GridWorld-v0`` (horizon ``5 size / 4``, 10 on 8x8, unless given): ``Discrete(9)`` king moves (``moves="cross"``: 5), optional ``slip``;
    observations ``"index"``, ``"onehot"``, ``"features"``, ``"rgb"`` (``(5 size, 5 size, 3)`` uint8).

    ## Reward
    A state reward, linear in the task's intent parameters:
    ``r(s) = terrain_weights[terrain(s)] + sum_k goals[k].value [s is goal k]
    + sum_j obstacles[j].penalty [Chebyshev distance from s to obstacle j <= obstacle_radius]``
    (penalty zones add up where they overlap; no goal lies in a zone). The intent is drawn per task:
    ``terrain_weights = terrain_rewards + terrain_spread * N(0, 1)``;
    ``goal value = goal_reward + appearance_slope * a_1 + goal_spread * N(0, 1)``;
    ``obstacle penalty = obstacle_penalty + appearance_slope * a_1 + obstacle_spread * N(0, 1)``,
    with ``a_1`` the second entry of the sprite's appearance vector. Features
    (``feature_matrix``, ``(S, F)``, ``F = n_terrain + 2 (sprite_feature_dim + 1)``) are
    GridWorld's: terrain one-hot, [sprite here, its appearance], [sprites in the 8 neighbouring
    cells, summed appearance]. With ``obstacle_radius = 1`` and ``n_goals + n_obstacles <=
    sprite_feature_dim + 1`` (the defaults), a linear reward on these features represents every
    task's reward exactly (with per-task weights); :meth:`linear_intent` gives the reward as
    ``basis @ params`` with the prior, for oracles and analysis.

    ## Tasks
    ``params = {"terrain": size x size ints, "terrain_weights": [n_terrain floats],
    "goals": [{"type", "cell": [row, col], "value"}, ...], "obstacles": [{"type", "cell", "penalty"}, ...]}``.
    Splits as ``GridWorld-v0``: the last ``round(unseen_fraction * n_sprite_types)`` types are
    ``"test_unseen"`` only; each (goal types, obstacle types) combination is hashed to ``"train"``
    or ``"test"`` (``test_combination_fraction``). The first state is uniform over cells without a
    sprite. ``goal_state`` is ``None``: which goal is best depends on where an episode starts, so
    success at one cell is not the task's intent; score by EVD.

    ## Information
    What n demos of a held-out task reveal (``benchmarks/information_curve.py``: 24 ``"test"``
    tasks, nested soft-expert demos, converged start-conditioned MaxEnt, ``maxent_tabular`` and
    ``maxent_linear`` with L2 0.01 per demo; mean normalized EVD, 0 expert and 1 the uniform
    policy)::

        n demos                               1      2      4      8     16     32
        MaxEnt, tabular reward            0.234  0.143  0.074  0.057  0.025  0.010
        MaxEnt, linear on the features    0.278  0.166  0.073  0.034  0.021  0.006
        posterior mode (knows the prior)  0.077  0.056  0.021  0.007  0.003  0.002
        prior mean reward (no demo)       0.136

    Each further demo is worth something even to an estimator that knows the family's prior
    (on ``GridWorld-v0`` that estimator is exact from one demo), and the prior is worth about
    two demos to one that does not. The defaults (``n_goals=4``, horizon ``5 size / 4``, the
    spreads) were chosen for both (sweep in ``benchmarks/README.md``): with horizon ``2 size`` or
    3 goals, one demo of MaxEnt already beats the prior mean; with narrower spreads the first
    demos add little to the prior; with wider ones the prior is worth less than one demo.

    ## Versions
    v0: first release. Registered: ``GridWorld-Intent-v0`` (8x8).
    """

    family = "GridWorldIntent"

    def __init__(
        self,
        size: int = 8,
        moves: str = "king",
        slip: float = 0.0,
        horizon: Optional[int] = None,
        n_sprite_types: int = 100,
        n_goals: int = 4,
        n_obstacles: int = 2,
        sprite_feature_dim: int = 8,
        terrain_rewards: Sequence[float] = (0.0, -0.5, -1.0, -1.5),
        terrain_spread: float = 1.0,
        goal_reward: float = 3.0,
        goal_spread: float = 1.5,
        obstacle_penalty: float = -5.0,
        obstacle_spread: float = 1.0,
        appearance_slope: float = 1.0,
        obstacle_radius: int = 1,
        unseen_fraction: float = 0.2,
        test_combination_fraction: float = 0.2,
        obs_type: str = "index",
        task: Optional[TaskLike] = None,
        render_mode: Optional[str] = None,
    ) -> None:
        size = check_int("size", size, 2)
        config = grid_config(
            size=size,
            moves=moves,
            slip=slip,
            horizon=(5 * size) // 4 if horizon is None else horizon,
            n_sprite_types=n_sprite_types,
            n_obstacles=n_obstacles,
            sprite_feature_dim=sprite_feature_dim,
            terrain_rewards=terrain_rewards,
            goal_reward=goal_reward,
            obstacle_penalty=obstacle_penalty,
            obstacle_radius=obstacle_radius,
            unseen_fraction=unseen_fraction,
            test_combination_fraction=test_combination_fraction,
        )
        if config["sprite_feature_dim"] < 2:
            raise ValueError(f"sprite_feature_dim must be >= 2 (entry 0 is a sprite's kind, entry 1 sets its mean value), got {config['sprite_feature_dim']}")
        config.update(
            n_goals=check_int("n_goals", n_goals, 1),
            terrain_spread=check_float("terrain_spread", terrain_spread, 0.0),
            goal_spread=check_float("goal_spread", goal_spread, 0.0),
            obstacle_spread=check_float("obstacle_spread", obstacle_spread, 0.0),
            appearance_slope=check_float("appearance_slope", appearance_slope),
        )
        dim = config["sprite_feature_dim"]
        kinds = {t: sprite_kind_is_goal(t, dim) for t in range(config["n_sprite_types"])}
        n_unseen = int(round(config["unseen_fraction"] * config["n_sprite_types"]))
        training = range(config["n_sprite_types"] - n_unseen)
        for label, want, count in (("goal", True, config["n_goals"]), ("obstacle", False, config["n_obstacles"])):
            available = sum(kinds[t] == want for t in training)
            if available < count:
                raise ValueError(
                    f"n_sprite_types={config['n_sprite_types']} with unseen_fraction={config['unseen_fraction']} leaves {available} "
                    f"training sprite types of kind {label!r}, fewer than the {count} {label} sprites per task"
                )
        self._kinds = kinds
        self._init_grid(config, task, obs_type, render_mode)

    def _n_goals(self, config: dict) -> int:
        return config["n_goals"]

    # --- tasks -------------------------------------------------------------------------------
    def _sample_types(self, rng: np.random.Generator, split: str) -> tuple[list[int], list[int]]:
        """``(goal types, obstacle types)`` for a task of ``split``."""
        c = self.config
        pool = self.unseen_types if split == "test_unseen" else self.training_types
        goal_pool = [t for t in pool if self._kinds[t]]
        obstacle_pool = [t for t in pool if not self._kinds[t]]
        if len(goal_pool) < c["n_goals"] or len(obstacle_pool) < c["n_obstacles"]:
            raise ValueError(
                f"split {split!r} needs {c['n_goals']} goal and {c['n_obstacles']} obstacle sprite types; its pool of "
                f"{len(pool)} types has {len(goal_pool)} and {len(obstacle_pool)} (raise n_sprite_types or unseen_fraction)"
            )
        fraction = c["test_combination_fraction"]
        for _ in range(10_000):
            goals = [int(t) for t in rng.choice(goal_pool, c["n_goals"], replace=False)]
            obstacles = [int(t) for t in rng.choice(obstacle_pool, c["n_obstacles"], replace=False)]
            if split == "test_unseen" or _combination_is_test(goals, obstacles, fraction) == (split == "test"):
                return goals, obstacles
        raise ValueError(
            f"could not draw a {split!r} sprite combination: test_combination_fraction={fraction} leaves (almost) none for this split"
        )

    def _mean_value(self, sprite_type: int, base: float) -> float:
        """The shared-mean value of a sprite: ``base + appearance_slope * a_1`` (``a`` its appearance vector)."""
        return base + self.config["appearance_slope"] * float(sprite_appearance(sprite_type, self.config["sprite_feature_dim"])[0][1])

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict:
        c = self.config
        goals, obstacles = self._sample_types(rng, split)
        terrain, cells = self._sample_layout(rng, len(goals), len(goals) + len(obstacles))
        weights = np.asarray(c["terrain_rewards"]) + c["terrain_spread"] * rng.normal(size=len(c["terrain_rewards"]))
        values = [self._mean_value(t, c["goal_reward"]) + c["goal_spread"] * rng.normal() for t in goals]
        penalties = [self._mean_value(t, c["obstacle_penalty"]) + c["obstacle_spread"] * rng.normal() for t in obstacles]
        return {
            "terrain": terrain,
            "terrain_weights": weights.tolist(),
            "goals": [{"type": t, "cell": cell, "value": float(v)} for t, cell, v in zip(goals, cells, values)],
            "obstacles": [
                {"type": t, "cell": cell, "penalty": float(p)} for t, cell, p in zip(obstacles, cells[len(goals) :], penalties)
            ],
        }

    def _sprites(self, params: dict) -> list[dict]:
        return params["goals"] + params["obstacles"]

    def _check_params(self, params: dict) -> None:
        c = self.config
        keys = {"terrain", "terrain_weights", "goals", "obstacles"}
        if not isinstance(params, dict) or set(params) != keys:
            raise ValueError(f"GridWorldIntent task params must have keys {sorted(keys)}, got {sorted(params) if isinstance(params, dict) else params!r:.80}")
        self._check_terrain(params["terrain"])
        weights = params["terrain_weights"]
        n_terrain = len(c["terrain_rewards"])
        if not isinstance(weights, list) or len(weights) != n_terrain:
            raise ValueError(f"params['terrain_weights'] must be a list of {n_terrain} numbers, got {weights!r:.80}")
        for i, weight in enumerate(weights):
            check_float(f"params['terrain_weights'][{i}]", weight)
        sprites = []
        for key, count, number in (("goals", c["n_goals"], "value"), ("obstacles", c["n_obstacles"], "penalty")):
            entries = params[key]
            if not isinstance(entries, list) or len(entries) != count:
                raise ValueError(f"params[{key!r}] must be a list of {count} sprites, got {entries!r:.80}")
            sprites += [(f"{key}[{i}]", entry, (number,)) for i, entry in enumerate(entries)]
        self._check_sprites(sprites)
        self._check_goals_clear([(where, entry) for where, entry, _ in sprites[: c["n_goals"]]], params["obstacles"])
        for where, entry, (number,) in sprites:
            want_goal = number == "value"
            if self._kinds[int(entry["type"])] != want_goal:
                raise ValueError(
                    f"params[{where!r}]['type'] {entry['type']} is {'an obstacle' if want_goal else 'a goal'} sprite type (kind = sign of "
                    f"its appearance entry 0), but {where.split('[')[0]} must be {'goal' if want_goal else 'obstacle'} types"
                )

    def _check_split(self, params: dict, split: str) -> None:
        """As GridWorld's: distinct types, unseen types only in ``"test_unseen"``, and a (goal types,
        obstacle types) combination of the task's own split."""
        check_sprite_split(self, [g["type"] for g in params["goals"]], [o["type"] for o in params["obstacles"]], split)

    def _model_shape(self, config: dict, obs_type: str) -> ModelShape:
        shape = super()._model_shape(config, obs_type)
        n_terrain, n_sprites = len(config["terrain_rewards"]), config["n_goals"] + config["n_obstacles"]
        return dataclasses.replace(shape, param_numbers=shape.n_states + n_terrain + 4 * n_sprites)

    def linear_intent(self) -> LinearIntent:
        """The current task's reward as ``basis @ params`` with the family's prior over ``params``.

        Parameters, in order: the ``n_terrain`` terrain weights, the ``n_goals`` goal values, the
        ``n_obstacles`` obstacle penalties. ``basis (S, P)``: terrain one-hot, goal-cell indicators,
        obstacle-zone indicators (all fixed by the visible layout). Prior: ``mean`` as in the
        Reward section (the appearance map included), ``std`` the three spreads.
        """
        c = self.config
        params = self.task.params
        size = c["size"]
        terrain = np.asarray(params["terrain"]).ravel()
        n_terrain = len(c["terrain_rewards"])
        columns = [np.eye(n_terrain)[terrain]]
        goal_cols = np.zeros((size * size, len(params["goals"])))
        for k, goal in enumerate(params["goals"]):
            goal_cols[goal["cell"][0] * size + goal["cell"][1], k] = 1.0
        zone_cols = np.stack([self._zone(o["cell"]) for o in params["obstacles"]], axis=1).astype(np.float64) if params["obstacles"] else np.zeros((size * size, 0))
        basis = np.concatenate(columns + [goal_cols, zone_cols], axis=1)
        mean = np.concatenate(
            [
                np.asarray(c["terrain_rewards"], np.float64),
                [self._mean_value(g["type"], c["goal_reward"]) for g in params["goals"]],
                [self._mean_value(o["type"], c["obstacle_penalty"]) for o in params["obstacles"]],
            ]
        )
        std = np.concatenate(
            [np.full(n_terrain, c["terrain_spread"]), np.full(len(params["goals"]), c["goal_spread"]), np.full(len(params["obstacles"]), c["obstacle_spread"])]
        )
        true = np.concatenate(
            [np.asarray(params["terrain_weights"], np.float64), [g["value"] for g in params["goals"]], [o["penalty"] for o in params["obstacles"]]]
        )
        names = tuple(
            [f"terrain_weights[{i}]" for i in range(n_terrain)]
            + [f"goals[{k}].value" for k in range(len(params["goals"]))]
            + [f"obstacles[{j}].penalty" for j in range(len(params["obstacles"]))]
        )
        return LinearIntent(basis, mean, std, true, names)

    def reward_prior(self) -> RewardPrior:
        """:meth:`linear_intent`'s Gaussian prior over the terrain weights, goal values and obstacle penalties."""
        return self.linear_intent().prior()

    def _build_model(self, params: dict) -> TabularModel:
        size = self.config["size"]
        terrain = np.asarray(params["terrain"]).ravel()
        reward = np.asarray(params["terrain_weights"], np.float64)[terrain]
        for goal in params["goals"]:
            reward[goal["cell"][0] * size + goal["cell"][1]] += float(goal["value"])
        for obstacle in params["obstacles"]:
            reward[self._zone(obstacle["cell"])] += float(obstacle["penalty"])
        return self._model_with_reward(params, reward)

    # --- views -------------------------------------------------------------------------------
    @property
    def goal_state(self) -> Optional[int]:
        """``None``: the best goal depends on where an episode starts (see the Tasks section)."""
        return None

    def _sprite_ring(self, sprite: dict) -> Optional[np.ndarray]:
        return _GOAL_RING if self._kinds[int(sprite["type"])] else _OBSTACLE_RING

    def _sprite_chars(self, params: dict) -> list[tuple[list, str]]:
        return [(g["cell"], "G") for g in params["goals"]] + [(o["cell"], "X") for o in params["obstacles"]]
