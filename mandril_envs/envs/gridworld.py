"""A SpriteWorld-like gridworld after the MandRIL paper (Xu et al., ICML 2019)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional, Sequence

import numpy as np
from gymnasium import spaces

from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
from mandril_envs.priors import DiscreteRewardPrior, RewardPrior
from mandril_envs.sizes import ModelShape
from mandril_envs.tasks import TaskLike
from mandril_envs.validation import check_choice, check_float, check_float_sequence, check_int, check_number_array, check_probability

#: Moves as (d_row, d_col): action 0 stays, 1-4 are N, S, W, E, 5-8 the diagonals NW, NE, SW, SE.
MOVES: tuple[tuple[int, int], ...] = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
ACTION_NAMES: tuple[str, ...] = ("stay", "N", "S", "W", "E", "NW", "NE", "SW", "SE")
#: Pixels per cell in the RGB map: a 1-pixel terrain ring around a 3x3 sprite patch.
CELL_PIXELS = 5
_APPEARANCE_STREAM = 90_210
_TERRAIN_COLOURS = np.array(
    [[150, 110, 60], [70, 160, 70], [90, 90, 200], [200, 200, 90], [160, 160, 160], [200, 120, 180]], np.uint8
)
_TERRAIN_CHARS = ".,~:;'"


@lru_cache(maxsize=4096)
def sprite_appearance(sprite_type: int, feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed appearance of a sprite type: ``(features (D,), patch (3, 3, 3) uint8)``.

    It depends on the type index alone (not on the pool size or any seed), so a type looks the
    same in every task, split and config.
    """
    rng = np.random.default_rng(np.random.SeedSequence([_APPEARANCE_STREAM, int(sprite_type)]))
    patch = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
    features = rng.normal(0.0, 1.0, feature_dim)
    patch.setflags(write=False)
    features.setflags(write=False)
    return features, patch


def _combination_is_test(goal: "int | Sequence[int]", obstacles: Sequence[int], fraction: float) -> bool:
    """Whether a (goal type, obstacle type set) combination belongs to the test split.

    ``goal`` is one type, or a set of goal types (families with several goals; order-free).
    """
    if isinstance(goal, (int, np.integer)):
        h = int(goal) + 1
    else:
        h = 0x60A15  # a set of goals never hashes like a single goal
        for g in sorted(goal):
            h = (h * 1_000_003 + g + 1) % (1 << 61)
    for o in sorted(obstacles):
        h = (h * 1_000_003 + o + 1) % (1 << 61)
    return ((h * 0x9E3779B97F4A7C15) % (1 << 64)) / float(1 << 64) < fraction


def _span(types: tuple[int, ...]) -> str:
    return f"{types[0]}..{types[-1]}" if types else "(none)"

def check_sprite_split(env: "GridWorldEnv", goals: Sequence[int], obstacles: Sequence[int], split: str, goal_role: str = "goals") -> None:
    """Raise a ValueError naming the sprite if a task's goal and obstacle types cannot belong to ``split``.

    The types must be distinct; ``"test_unseen"`` holds only the env's unseen types, the other splits
    none of them; ``"test"`` holds exactly the held-out (goal types, obstacle types) combinations.
    ``goal_role``: how the goals are named in messages (``"goal"`` for one goal, else ``goals[i]``).
    """
    types = list(goals) + list(obstacles)
    roles = ([goal_role] if goal_role == "goal" else [f"{goal_role}[{i}]" for i in range(len(goals))]) + [f"obstacles[{j}]" for j in range(len(obstacles))]
    if len(set(types)) != len(types):
        raise ValueError(f"a task's sprite types must be distinct (no split draws a type twice), got {types}")
    leak = f"task split {split!r} cannot hold this task (the split would leak)"
    unseen = env.unseen_types
    if split == "test_unseen":
        for role, kind in zip(roles, types):
            if kind not in unseen:
                raise ValueError(f"{leak}: {role} sprite type {kind} is a training type; 'test_unseen' uses only the unseen types {_span(unseen)}")
        return
    for role, kind in zip(roles, types):
        if kind in unseen:
            raise ValueError(f"{leak}: {role} sprite type {kind} is one of the unseen types {_span(unseen)}, kept for 'test_unseen'")
    goal_key = goals[0] if goal_role == "goal" else list(goals)
    held_out = _combination_is_test(goal_key, list(obstacles), env.config["test_combination_fraction"])
    if held_out != (split == "test"):
        kind = "a held-out (test) combination" if held_out else "a training combination"
        what = f"goal {goals[0]}" if goal_role == "goal" else f"goals {sorted(goals)}"
        raise ValueError(f"{leak}: the sprite combination {what} with obstacles {sorted(obstacles)} is {kind}")



def _smooth(field: np.ndarray) -> np.ndarray:
    padded = np.pad(field, 1, mode="edge")
    n = field.shape[0]
    return sum(padded[i : i + n, j : j + n] for i in range(3) for j in range(3)) / 9.0


def grid_config(
    *,
    size: int,
    moves: str,
    slip: float,
    horizon: Optional[int],
    n_sprite_types: int,
    n_obstacles: int,
    sprite_feature_dim: int,
    terrain_rewards: Sequence[float],
    goal_reward: float,
    obstacle_penalty: float,
    obstacle_radius: int,
    unseen_fraction: float,
    test_combination_fraction: float,
) -> dict:
    """The checked config of the kwargs every GridWorld family shares (see :class:`GridWorldEnv`)."""
    size = check_int("size", size, 2)
    config = {
        "size": size,
        "moves": check_choice("moves", moves, ("king", "cross")),
        "slip": check_probability("slip", slip),
        "horizon": 2 * size if horizon is None else check_int("horizon", horizon, 1),
        "n_sprite_types": check_int("n_sprite_types", n_sprite_types, 1),
        "n_obstacles": check_int("n_obstacles", n_obstacles, 0),
        "sprite_feature_dim": check_int("sprite_feature_dim", sprite_feature_dim, 1),
        "terrain_rewards": check_float_sequence("terrain_rewards", terrain_rewards),
        "goal_reward": check_float("goal_reward", goal_reward),
        "obstacle_penalty": check_float("obstacle_penalty", obstacle_penalty),
        "obstacle_radius": check_int("obstacle_radius", obstacle_radius, 0),
        "unseen_fraction": check_probability("unseen_fraction", unseen_fraction),
        "test_combination_fraction": check_probability("test_combination_fraction", test_combination_fraction),
    }
    if not 1 <= len(config["terrain_rewards"]) <= len(_TERRAIN_COLOURS):
        raise ValueError(f"terrain_rewards must have 1 to {len(_TERRAIN_COLOURS)} entries, got {len(config['terrain_rewards'])}")
    return config


class GridWorldEnv(TabularTaskEnv):
    """A SpriteWorld-like grid: reach the goal sprite, keep clear of the obstacles, prefer dirt.

    ## Description
    An ``size x size`` grid (default 8) after the MandRIL paper's SpriteWorld. Each cell has a
    terrain type (``len(terrain_rewards)`` types; type 0 "dirt" is preferred over type 1 "grass" by
    every task). Each task places ``1 + n_obstacles`` sprites drawn from a pool of
    ``n_sprite_types`` types: the first is the goal, the others are obstacles. Each sprite type
    has a fixed appearance (a feature vector and a 3x3 RGB patch), the same in every task. Which
    sprite is the goal is the task's intent: it is not marked on the map, demonstrations show it.
    There is no termination: the goal is a cell to stay on until the horizon.

    ## Spaces
    Action: ``Discrete(9)``: stay, N, S, W, E, NW, NE, SW, SE (``moves="cross"``: ``Discrete(5)``,
    the first five). A move off the grid stays. With ``slip > 0`` the executed action is, with
    probability ``slip``, uniform over all actions. Observation (``obs_type``): ``"index"``
    ``Discrete(S)`` with ``s = row * size + col``; ``"onehot"``; ``"features"``, the cell's feature
    row; ``"rgb"``, the whole map as a ``(5 size, 5 size, 3)`` uint8 image with the agent's cell
    ringed in white.

    ## Reward
    A state reward ``r(s) = terrain_rewards[terrain(s)] + goal_reward [s is the goal]
    + obstacle_penalty [Chebyshev distance from s to an obstacle <= obstacle_radius]``.
    Features (``feature_matrix``, ``(S, F)``): terrain one-hot, then [sprite here, its appearance],
    then [number of sprites in the 8 neighbouring cells, sum of their appearances], so that
    ``F = n_terrain + 2 (sprite_feature_dim + 1)``: the reward is a function of what lies at and
    near a cell. ``map_features()`` gives them as an ``(F, size, size)`` image.

    ## Tasks
    ``params = {"terrain": size x size ints, "goal": {"type", "cell": [row, col]},
    "obstacles": [{"type", "cell"}, ...]}``. The last ``round(unseen_fraction * n_sprite_types)``
    types are never used by ``"train"`` or ``"test"`` tasks. Each (goal type, obstacle types)
    combination is assigned by a fixed hash to training (``1 - test_combination_fraction``) or test.
    Splits: ``"train"``: training types in training combinations; ``"test"``: training types in
    held-out combinations (new layouts and combinations); ``"test_unseen"``: sprites never seen in
    training. Layouts (terrain, positions) are drawn per task; the goal is never inside an
    obstacle's penalty zone. The first state is uniform over cells without a sprite. ``set_task``
    refuses a task its split cannot hold (an unseen sprite type outside ``"test_unseen"``, a
    combination of the other split, a repeated type, a goal in an obstacle's zone): it would leak.

    ## Information
    What demos reveal (``benchmarks/information_curve.py``, 24 held-out ``"test"`` tasks of the
    8x8 grid; mean normalized EVD for n = 1, 2, 4, 8, 16, 32 soft-expert demos): converged MaxEnt
    with a tabular reward 0.063, 0.050, 0.038, 0.013, 0.007, 0.005; linear on the features
    0.056, 0.046, 0.018, 0.005, 0.003, 0.002. An estimator that knows the family (the goal is one
    of the visible sprites) is exact from one demo: the posterior mode and the rule "the goal is
    the sprite nearest the first demo's end" both score EVD 0 on every task. The intent is a
    choice among three sprites; for tasks where further demos keep paying, see
    ``GridWorld-Intent-v0`` (:class:`~mandril_envs.envs.gridworld_intent.GridWorldIntentEnv`).

    ## Versions
    v0: first release. Registered: ``GridWorld-v0`` (8x8), ``GridWorld-16x16-v0``, ``GridWorld-32x32-v0``.
    """

    family = "GridWorld"
    splits = ("train", "test", "test_unseen")
    obs_types = ("index", "onehot", "features", "rgb")
    reward_input_kinds = ("features", "map", "rgb")
    size_arguments = ("size", "sprite_feature_dim")

    def __init__(
        self,
        size: int = 8,
        moves: str = "king",
        slip: float = 0.0,
        horizon: Optional[int] = None,
        n_sprite_types: int = 100,
        n_obstacles: int = 2,
        sprite_feature_dim: int = 8,
        terrain_rewards: tuple[float, ...] = (0.0, -1.0),
        goal_reward: float = 5.0,
        obstacle_penalty: float = -10.0,
        obstacle_radius: int = 1,
        unseen_fraction: float = 0.2,
        test_combination_fraction: float = 0.2,
        obs_type: str = "index",
        task: Optional[TaskLike] = None,
        render_mode: Optional[str] = None,
    ) -> None:
        config = grid_config(
            size=size,
            moves=moves,
            slip=slip,
            horizon=horizon,
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
        self._init_grid(config, task, obs_type, render_mode)

    def _n_goals(self, config: dict) -> int:
        """Goal sprites per task (one here; subclasses with several goals override)."""
        return 1

    def _init_grid(self, config: dict, task: Optional[TaskLike], obs_type: str, render_mode: Optional[str]) -> None:
        """Check that the sprites fit, split the sprite pool, build the dynamics, then draw or install the first task."""
        size = config["size"]
        n_goals, n_obstacles = self._n_goals(config), config["n_obstacles"]
        n_sprites = n_goals + n_obstacles
        if n_sprites > size * size:
            raise ValueError(
                f"{n_goals} goal(s) + n_obstacles={n_obstacles} = {n_sprites} sprites do not fit on a {size}x{size} grid of {size * size} cells"
            )
        n_unseen = int(round(config["unseen_fraction"] * config["n_sprite_types"]))
        self.unseen_types = tuple(range(config["n_sprite_types"] - n_unseen, config["n_sprite_types"]))
        self.training_types = tuple(range(config["n_sprite_types"] - n_unseen))
        if len(self.training_types) < n_sprites:
            raise ValueError(
                f"n_sprite_types={config['n_sprite_types']} with unseen_fraction={config['unseen_fraction']} leaves "
                f"{len(self.training_types)} training sprite types, fewer than the {n_sprites} sprites per task"
            )
        self._check_size(config, obs_type)  # before the (S, A, K) dynamics are allocated
        self._successor_indices, self._successor_probs = self._dynamics(size, config["moves"], config["slip"])
        TabularTaskEnv.__init__(self, config, task, obs_type, render_mode)

    def _model_shape(self, config: dict, obs_type: str) -> ModelShape:
        size, n_actions = config["size"], 9 if config["moves"] == "king" else 5
        n_states, n_features = size * size, len(config["terrain_rewards"]) + 2 * (config["sprite_feature_dim"] + 1)
        side = size * CELL_PIXELS
        observation = 3 * side * side * 3 if obs_type == "rgb" else self._observation_nbytes(obs_type, n_states, n_features)
        return ModelShape(
            n_states,
            n_actions,
            1 if config["slip"] == 0.0 else n_actions,
            n_features,
            param_numbers=n_states + 3 * (1 + config["n_obstacles"]),
            observation_bytes=observation,
        )

    # --- dynamics ----------------------------------------------------------------------------
    @staticmethod
    def _dynamics(size: int, moves: str, slip: float) -> tuple[np.ndarray, np.ndarray]:
        """Successor form ``(S, A, K)``: K = 1 when deterministic, else K = A (one entry per executed action)."""
        n_actions = 9 if moves == "king" else 5
        rows, cols = np.divmod(np.arange(size * size), size)
        deltas = np.array(MOVES[:n_actions])
        new_rows = rows[:, None] + deltas[None, :, 0]
        new_cols = cols[:, None] + deltas[None, :, 1]
        inside = (new_rows >= 0) & (new_rows < size) & (new_cols >= 0) & (new_cols < size)
        dest = np.where(inside, new_rows * size + new_cols, np.arange(size * size)[:, None])  # (S, A)
        if slip == 0.0:
            return dest[:, :, None].astype(np.int64), np.ones(dest.shape + (1,))
        indices = np.broadcast_to(dest[:, None, :], (size * size, n_actions, n_actions)).astype(np.int64)
        probs = np.full((size * size, n_actions, n_actions), slip / n_actions)
        probs[:, np.arange(n_actions), np.arange(n_actions)] += 1.0 - slip
        return indices, probs

    # --- tasks -------------------------------------------------------------------------------
    def _sample_types(self, rng: np.random.Generator, split: str) -> list[int]:
        n_sprites = 1 + self.config["n_obstacles"]
        fraction = self.config["test_combination_fraction"]
        if split == "test_unseen":
            if len(self.unseen_types) < n_sprites:
                raise ValueError(
                    f"split 'test_unseen' needs at least {n_sprites} unseen sprite types; unseen_fraction="
                    f"{self.config['unseen_fraction']} of n_sprite_types={self.config['n_sprite_types']} gives {len(self.unseen_types)}"
                )
            return [int(t) for t in rng.choice(self.unseen_types, n_sprites, replace=False)]
        want_test = split == "test"
        for _ in range(10_000):
            types = [int(t) for t in rng.choice(self.training_types, n_sprites, replace=False)]
            if _combination_is_test(types[0], types[1:], fraction) == want_test:
                return types
        raise ValueError(
            f"could not draw a {split!r} sprite combination: test_combination_fraction={fraction} with "
            f"{len(self.training_types)} training sprite types leaves (almost) none for this split"
        )

    def _sample_layout(self, rng: np.random.Generator, n_goals: int, n_sprites: int) -> tuple[list, list]:
        """A task's layout: terrain (``size x size`` ints) and the ``[row, col]`` of ``n_sprites``
        sprites, goals first; no goal lies within ``obstacle_radius`` of an obstacle."""
        c = self.config
        size, n_terrain = c["size"], len(c["terrain_rewards"])
        field = _smooth(_smooth(rng.normal(size=(size, size))))
        edges = np.quantile(field, np.linspace(0, 1, n_terrain + 1)[1:-1])
        terrain = np.searchsorted(edges, field.ravel(), side="right").reshape(size, size)
        for _ in range(1_000):
            cells = rng.choice(size * size, n_sprites, replace=False)
            goal_rc = np.stack(np.divmod(cells[:n_goals], size), axis=1)
            obstacle_rc = np.stack(np.divmod(cells[n_goals:], size), axis=1)
            if len(obstacle_rc) == 0 or np.abs(obstacle_rc[None] - goal_rc[:, None]).max(axis=2).min() > c["obstacle_radius"]:
                break
        else:
            raise ValueError(
                f"could not place the goal(s) outside every obstacle's radius {c['obstacle_radius']} on a {size}x{size} grid "
                f"with {c['n_obstacles']} obstacles: use a larger size or fewer obstacles"
            )
        return terrain.astype(int).tolist(), [list(divmod(int(flat), size)) for flat in cells]

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict:
        types = self._sample_types(rng, split)
        terrain, cells = self._sample_layout(rng, 1, len(types))
        return {
            "terrain": terrain,
            "goal": {"type": types[0], "cell": cells[0]},
            "obstacles": [{"type": t, "cell": cell} for t, cell in zip(types[1:], cells[1:])],
        }

    def _sprites(self, params: dict) -> list[dict]:
        """The task's sprites (dicts with ``"type"`` and ``"cell"``), goal(s) first."""
        return [params["goal"]] + params["obstacles"]

    def _check_params(self, params: dict) -> None:
        c = self.config
        if set(params) != {"terrain", "goal", "obstacles"}:
            raise ValueError(f"GridWorld task params must have keys ['goal', 'obstacles', 'terrain'], got {sorted(params)}")
        self._check_terrain(params["terrain"])
        obstacles = params["obstacles"]
        if not isinstance(obstacles, list) or len(obstacles) != c["n_obstacles"]:
            raise ValueError(f"params['obstacles'] must be a list of {c['n_obstacles']} sprites, got {obstacles!r:.80}")
        self._check_sprites([("goal", params["goal"], ())] + [(f"obstacles[{i}]", o, ()) for i, o in enumerate(obstacles)])
        self._check_goals_clear([("goal", params["goal"])], obstacles)

    def _check_terrain(self, terrain: Any) -> None:
        """``params["terrain"]`` must be ``size x size`` ints in ``[0, n_terrain)``."""
        size, n_terrain = self.config["size"], len(self.config["terrain_rewards"])
        try:
            terrain = check_number_array("params['terrain']", terrain, (size, size), integer=True)
        except (TypeError, ValueError) as error:
            raise type(error)(f"params['terrain'] must be {size}x{size} ints: {error}") from None
        if terrain.min() < 0 or terrain.max() >= n_terrain:
            raise ValueError(f"params['terrain'] values must lie in [0, {n_terrain}), got [{terrain.min()}, {terrain.max()}]")

    def _check_sprites(self, sprites: list[tuple[str, Any, tuple[str, ...]]]) -> None:
        """Each ``(where, sprite, numbers)`` must be ``{"type", "cell", *numbers}`` with a valid type, a
        cell on the grid not taken by another sprite, and finite numbers under the keys ``numbers``."""
        c = self.config
        size = c["size"]
        seen_cells = set()
        for where, sprite, numbers in sprites:
            keys = {"type", "cell", *numbers}
            shape = ", ".join(["'type': int", "'cell': [row, col]"] + [f"{key!r}: float" for key in numbers])
            if not isinstance(sprite, dict) or set(sprite) != keys:
                raise ValueError(f"params[{where!r}] must be {{{shape}}}, got {sprite!r:.80}")
            check_int(f"params[{where!r}]['type']", sprite["type"], 0, c["n_sprite_types"] - 1)
            cell = sprite["cell"]
            if not isinstance(cell, list) or len(cell) != 2:
                raise ValueError(f"params[{where!r}]['cell'] must be [row, col], got {cell!r}")
            for coordinate in cell:
                check_int(f"params[{where!r}]['cell']", coordinate, 0, size - 1)
            if tuple(cell) in seen_cells:
                raise ValueError(f"params[{where!r}]['cell'] {cell} is already taken by another sprite")
            seen_cells.add(tuple(cell))
            for key in numbers:
                check_float(f"params[{where!r}][{key!r}]", sprite[key])

    def _check_goals_clear(self, goals: list[tuple[str, dict]], obstacles: list[dict]) -> None:
        """No goal ``(where, sprite)`` lies within ``obstacle_radius`` of an obstacle (no task is drawn so)."""
        radius = self.config["obstacle_radius"]
        for where, goal in goals:
            cell = goal["cell"]
            for i, obstacle in enumerate(obstacles):
                if max(abs(cell[0] - obstacle["cell"][0]), abs(cell[1] - obstacle["cell"][1])) <= radius:
                    raise ValueError(
                        f"params[{where!r}] cell {cell} lies within obstacle_radius={radius} of obstacles[{i}] at "
                        f"{obstacle['cell']}: no task places a goal in an obstacle's penalty zone"
                    )

    def _check_split(self, params: dict, split: str) -> None:
        """The sprite types must be distinct and of the split: training types in a training combination
        (``"train"``), training types in a held-out combination (``"test"``), unseen types (``"test_unseen"``)."""
        check_sprite_split(self, [params["goal"]["type"]], [o["type"] for o in params["obstacles"]], split, "goal")

    def _build_model(self, params: dict) -> TabularModel:
        c = self.config
        size = c["size"]
        terrain = np.asarray(params["terrain"]).ravel()
        reward = np.asarray(c["terrain_rewards"])[terrain].astype(np.float64)
        goal = params["goal"]["cell"]
        reward[goal[0] * size + goal[1]] += c["goal_reward"]
        near_obstacle = np.zeros(size * size, bool)
        for obstacle in params["obstacles"]:
            near_obstacle |= self._zone(obstacle["cell"])
        reward[near_obstacle] += c["obstacle_penalty"]
        return self._model_with_reward(params, reward)

    def reward_prior(self) -> RewardPrior:
        """Which of the task's sprites is the goal: one candidate reward per sprite (that sprite the goal,
        the others obstacles), in the order of their cells (``labels``: the goal's state).

        The prior given the visible layout: a task draws its sprite types and its cells uniformly,
        rejecting a goal inside an obstacle's zone, so every sprite that could be the goal is equally
        likely and one inside another sprite's zone gets 0. The split's rule (a fixed hash assigns each
        (goal type, obstacle types) combination to training or test) is left out on purpose: it is how
        the benchmark assigns combinations to splits, not a property of intent, and on the ``"test"``
        split it alone names the goal of about half the tasks (the other assignments of the same
        sprites are rarely test combinations too) without any demo.
        """
        params = self.task.params
        size = self.config["size"]
        sprites = sorted(self._sprites(params), key=lambda sprite: tuple(sprite["cell"]))
        rewards, possible, labels = [], [], []
        for k, goal in enumerate(sprites):
            swapped = dict(params, goal=goal, obstacles=[s for i, s in enumerate(sprites) if i != k])
            try:
                self._check_goals_clear([("goal", goal)], swapped["obstacles"])
                possible.append(1.0)
            except ValueError:
                possible.append(0.0)
            rewards.append(np.array(self._build_model(swapped).reward_matrix))
            labels.append(goal["cell"][0] * size + goal["cell"][1])
        probs = np.asarray(possible) / sum(possible)
        return DiscreteRewardPrior(np.stack(rewards), probs, np.asarray(labels))

    def _zone(self, cell: list) -> np.ndarray:
        """``(S,)`` bool: the cells within Chebyshev distance ``obstacle_radius`` of ``cell = [row, col]``."""
        size = self.config["size"]
        rows, cols = np.divmod(np.arange(size * size), size)
        return np.maximum(np.abs(rows - cell[0]), np.abs(cols - cell[1])) <= self.config["obstacle_radius"]

    def _model_with_reward(self, params: dict, reward: np.ndarray) -> TabularModel:
        """The task's model for the state reward ``reward (S,)``: the grid's dynamics, the first state
        uniform over the cells without a sprite, the features of :meth:`_features`."""
        size = self.config["size"]
        unoccupied = np.ones(size * size)
        for sprite in self._sprites(params):
            unoccupied[sprite["cell"][0] * size + sprite["cell"][1]] = 0.0
        if unoccupied.sum() == 0:
            unoccupied[:] = 1.0
        return TabularModel(
            self._successor_indices,
            self._successor_probs,
            reward,
            unoccupied / unoccupied.sum(),
            self.config["horizon"],
            self._features(params),
        )

    def _features(self, params: dict) -> np.ndarray:
        """``(S, F)``: terrain one-hot, [sprite here, appearance], [sprites adjacent, summed appearance]."""
        c = self.config
        size, dim, n_terrain = c["size"], c["sprite_feature_dim"], len(c["terrain_rewards"])
        terrain = np.asarray(params["terrain"]).ravel()
        here = np.zeros((size, size, dim + 1))
        for sprite in self._sprites(params):
            r, col = sprite["cell"]
            here[r, col, 0] = 1.0
            here[r, col, 1:] = sprite_appearance(sprite["type"], dim)[0]
        padded = np.pad(here, ((1, 1), (1, 1), (0, 0)))
        around = sum(padded[1 + dr : 1 + dr + size, 1 + dc : 1 + dc + size] for dr, dc in MOVES[1:])
        return np.concatenate([np.eye(n_terrain)[terrain], here.reshape(size * size, -1), around.reshape(size * size, -1)], axis=1)

    # --- views -------------------------------------------------------------------------------
    def map_features(self) -> np.ndarray:
        """``(F, size, size)``: the feature matrix as a channels-first image of the map."""
        size = self.config["size"]
        return self.model.feature_matrix.T.reshape(-1, size, size)

    def map_image(self, agent_state: Optional[int] = None) -> np.ndarray:
        """``(5 size, 5 size, 3)`` uint8 RGB image of the map (agent's cell ringed in white if given)."""
        c = self.config
        size, p = c["size"], CELL_PIXELS
        terrain = np.asarray(self.task.params["terrain"])
        image = np.repeat(np.repeat(_TERRAIN_COLOURS[terrain], p, axis=0), p, axis=1)
        for sprite in self._sprites(self.task.params):
            r, col = sprite["cell"]
            ring = self._sprite_ring(sprite)
            if ring is not None:
                image[r * p : (r + 1) * p, col * p : (col + 1) * p] = ring
            image[r * p + 1 : r * p + 4, col * p + 1 : col * p + 4] = sprite_appearance(sprite["type"], c["sprite_feature_dim"])[1]
        if agent_state is not None:
            r, col = divmod(int(agent_state), size)
            block = image[r * p : (r + 1) * p, col * p : (col + 1) * p]
            block[[0, -1], :] = 255
            block[:, [0, -1]] = 255
        return image

    def _sprite_ring(self, sprite: dict) -> Optional[np.ndarray]:
        """The colour ``(3,)`` uint8 of the 1-pixel ring around a sprite's patch in the RGB map, or
        ``None`` to leave the terrain colour there (GridWorld: no ring, sprites look alike)."""
        return None

    def reward_input(self, kind: str = "features") -> np.ndarray:
        """``"features"`` ``(S, F)``; ``"map"``: :meth:`map_features` ``(F, size, size)``; ``"rgb"``: the
        map image without the agent, channels first, ``(3, 5 size, 5 size)`` floats in ``[0, 1]``."""
        if kind == "map":
            return np.array(self.map_features(), dtype=np.float64)
        if kind == "rgb":
            return np.ascontiguousarray(self.map_image().transpose(2, 0, 1), dtype=np.float64) / 255.0
        return super().reward_input(kind)

    @property
    def goal_state(self) -> Optional[int]:
        """The goal sprite's cell ``row * size + col``."""
        row, col = self.task.params["goal"]["cell"]
        return int(row * self.config["size"] + col)

    def _observation_space(self) -> spaces.Space:
        if self.obs_type == "rgb":
            side = self.config["size"] * CELL_PIXELS
            return spaces.Box(0, 255, (side, side, 3), np.uint8)
        return super()._observation_space()

    def observation(self, state: int) -> Any:
        """The observation of ``state`` (``"rgb"``: the map with the agent marked)."""
        if self.obs_type == "rgb":
            return self.map_image(state)
        return super().observation(state)

    def _render_rgb(self) -> np.ndarray:
        """The map image with the agent's cell ringed in white (:meth:`map_image`)."""
        return self.map_image(self._state)

    def _sprite_chars(self, params: dict) -> list[tuple[list, str]]:
        """``([row, col], char)`` of each sprite in the text map: ``G`` the goal, ``X`` an obstacle."""
        return [(params["goal"]["cell"], "G")] + [(o["cell"], "X") for o in params["obstacles"]]

    def _render_ansi(self) -> str:
        size = self.config["size"]
        grid = [[_TERRAIN_CHARS[t] for t in row] for row in self.task.params["terrain"]]
        for (row, col), char in self._sprite_chars(self.task.params):
            grid[row][col] = char
        r, col = divmod(self._state, size)
        grid[r][col] = "@"
        header = f"{self.family} {size}x{size} task {self.task.split}/{self.task.index} t={self._t}/{self.model.horizon}\n"
        return header + "\n".join("".join(row) for row in grid) + "\n"
