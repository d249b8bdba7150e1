"""A SpriteWorld-like gridworld after the MandRIL paper (Xu et al., ICML 2019)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

import numpy as np
from gymnasium import spaces

from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
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


def _combination_is_test(goal: int, obstacles: list[int], fraction: float) -> bool:
    """Whether a (goal, obstacle set) combination of sprite types belongs to the test split."""
    h = goal + 1
    for o in sorted(obstacles):
        h = (h * 1_000_003 + o + 1) % (1 << 61)
    return ((h * 0x9E3779B97F4A7C15) % (1 << 64)) / float(1 << 64) < fraction


def _span(types: tuple[int, ...]) -> str:
    return f"{types[0]}..{types[-1]}" if types else "(none)"


def _smooth(field: np.ndarray) -> np.ndarray:
    padded = np.pad(field, 1, mode="edge")
    n = field.shape[0]
    return sum(padded[i : i + n, j : j + n] for i in range(3) for j in range(3)) / 9.0


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

    ## Versions
    v0: first release. Registered: ``GridWorld-v0`` (8x8), ``GridWorld-16x16-v0``, ``GridWorld-32x32-v0``.
    """

    family = "GridWorld"
    splits = ("train", "test", "test_unseen")
    obs_types = ("index", "onehot", "features", "rgb")
    reward_input_kinds = ("features", "map", "rgb")
    size_arguments = ("size", "sprite_feature_dim")
    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

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
        n_sprites = 1 + config["n_obstacles"]
        if n_sprites > size * size:
            raise ValueError(f"n_obstacles + 1 = {n_sprites} sprites do not fit on a {size}x{size} grid of {size * size} cells")
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
        super().__init__(config, task, obs_type, render_mode)

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

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict:
        c = self.config
        size, n_terrain = c["size"], len(c["terrain_rewards"])
        types = self._sample_types(rng, split)
        field = _smooth(_smooth(rng.normal(size=(size, size))))
        edges = np.quantile(field, np.linspace(0, 1, n_terrain + 1)[1:-1])
        terrain = np.searchsorted(edges, field.ravel(), side="right").reshape(size, size)
        for _ in range(1_000):
            cells = rng.choice(size * size, len(types), replace=False)
            goal_rc = np.array(divmod(int(cells[0]), size))
            obstacle_rc = np.array([divmod(int(c_), size) for c_ in cells[1:]]).reshape(-1, 2)
            if len(obstacle_rc) == 0 or np.abs(obstacle_rc - goal_rc).max(axis=1).min() > c["obstacle_radius"]:
                break
        else:
            raise ValueError(
                f"could not place the goal outside every obstacle's radius {c['obstacle_radius']} on a {size}x{size} grid "
                f"with {c['n_obstacles']} obstacles: use a larger size or fewer obstacles"
            )
        cell = lambda flat: list(divmod(int(flat), size))  # noqa: E731
        return {
            "terrain": terrain.astype(int).tolist(),
            "goal": {"type": types[0], "cell": cell(cells[0])},
            "obstacles": [{"type": t, "cell": cell(flat)} for t, flat in zip(types[1:], cells[1:])],
        }

    def _check_params(self, params: dict) -> None:
        c = self.config
        size = c["size"]
        if set(params) != {"terrain", "goal", "obstacles"}:
            raise ValueError(f"GridWorld task params must have keys ['goal', 'obstacles', 'terrain'], got {sorted(params)}")
        try:
            terrain = check_number_array("params['terrain']", params["terrain"], (size, size), integer=True)
        except (TypeError, ValueError) as error:
            raise type(error)(f"params['terrain'] must be {size}x{size} ints: {error}") from None
        if terrain.min() < 0 or terrain.max() >= len(c["terrain_rewards"]):
            raise ValueError(f"params['terrain'] values must lie in [0, {len(c['terrain_rewards'])}), got [{terrain.min()}, {terrain.max()}]")
        obstacles = params["obstacles"]
        if not isinstance(obstacles, list) or len(obstacles) != c["n_obstacles"]:
            raise ValueError(f"params['obstacles'] must be a list of {c['n_obstacles']} sprites, got {obstacles!r:.80}")
        seen_cells = set()
        for where, sprite in [("goal", params["goal"])] + [(f"obstacles[{i}]", o) for i, o in enumerate(obstacles)]:
            if not isinstance(sprite, dict) or set(sprite) != {"type", "cell"}:
                raise ValueError(f"params[{where!r}] must be {{'type': int, 'cell': [row, col]}}, got {sprite!r:.80}")
            check_int(f"params[{where!r}]['type']", sprite["type"], 0, c["n_sprite_types"] - 1)
            cell = sprite["cell"]
            if not isinstance(cell, list) or len(cell) != 2:
                raise ValueError(f"params[{where!r}]['cell'] must be [row, col], got {cell!r}")
            for coordinate in cell:
                check_int(f"params[{where!r}]['cell']", coordinate, 0, size - 1)
            if tuple(cell) in seen_cells:
                raise ValueError(f"params[{where!r}]['cell'] {cell} is already taken by another sprite")
            seen_cells.add(tuple(cell))
        goal = params["goal"]["cell"]
        for i, obstacle in enumerate(obstacles):
            if max(abs(goal[0] - obstacle["cell"][0]), abs(goal[1] - obstacle["cell"][1])) <= c["obstacle_radius"]:
                raise ValueError(
                    f"params['goal'] cell {goal} lies within obstacle_radius={c['obstacle_radius']} of obstacles[{i}] at "
                    f"{obstacle['cell']}: no task places the goal in an obstacle's penalty zone"
                )

    def _check_split(self, params: dict, split: str) -> None:
        """The sprite types must be distinct and of the split: training types in a training combination
        (``"train"``), training types in a held-out combination (``"test"``), unseen types (``"test_unseen"``)."""
        types = [params["goal"]["type"]] + [o["type"] for o in params["obstacles"]]
        roles = ["goal"] + [f"obstacles[{i}]" for i in range(len(types) - 1)]
        if len(set(types)) != len(types):
            raise ValueError(f"a task's sprite types must be distinct (no split draws a type twice), got {types}")
        leak = f"task split {split!r} cannot hold this task (the split would leak)"
        if split == "test_unseen":
            for role, kind in zip(roles, types):
                if kind not in self.unseen_types:
                    raise ValueError(f"{leak}: {role} sprite type {kind} is a training type; 'test_unseen' uses only the unseen types {_span(self.unseen_types)}")
            return
        for role, kind in zip(roles, types):
            if kind in self.unseen_types:
                raise ValueError(f"{leak}: {role} sprite type {kind} is one of the unseen types {_span(self.unseen_types)}, kept for 'test_unseen'")
        held_out = _combination_is_test(types[0], types[1:], self.config["test_combination_fraction"])
        if held_out != (split == "test"):
            kind = "a held-out (test) combination" if held_out else "a training combination"
            raise ValueError(f"{leak}: the sprite combination goal {types[0]} with obstacles {sorted(types[1:])} is {kind}")

    def _build_model(self, params: dict) -> TabularModel:
        c = self.config
        size = c["size"]
        rows, cols = np.divmod(np.arange(size * size), size)
        terrain = np.asarray(params["terrain"]).ravel()
        reward = np.asarray(c["terrain_rewards"])[terrain].astype(np.float64)
        goal = params["goal"]["cell"]
        reward[goal[0] * size + goal[1]] += c["goal_reward"]
        near_obstacle = np.zeros(size * size, bool)
        for obstacle in params["obstacles"]:
            r, col = obstacle["cell"]
            near_obstacle |= np.maximum(np.abs(rows - r), np.abs(cols - col)) <= c["obstacle_radius"]
        reward[near_obstacle] += c["obstacle_penalty"]
        unoccupied = np.ones(size * size)
        for sprite in [params["goal"]] + params["obstacles"]:
            unoccupied[sprite["cell"][0] * size + sprite["cell"][1]] = 0.0
        if unoccupied.sum() == 0:
            unoccupied[:] = 1.0
        return TabularModel(
            self._successor_indices,
            self._successor_probs,
            reward,
            unoccupied / unoccupied.sum(),
            c["horizon"],
            self._features(params),
        )

    def _features(self, params: dict) -> np.ndarray:
        """``(S, F)``: terrain one-hot, [sprite here, appearance], [sprites adjacent, summed appearance]."""
        c = self.config
        size, dim, n_terrain = c["size"], c["sprite_feature_dim"], len(c["terrain_rewards"])
        terrain = np.asarray(params["terrain"]).ravel()
        here = np.zeros((size, size, dim + 1))
        for sprite in [params["goal"]] + params["obstacles"]:
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
        for sprite in [self.task.params["goal"]] + self.task.params["obstacles"]:
            r, col = sprite["cell"]
            image[r * p + 1 : r * p + 4, col * p + 1 : col * p + 4] = sprite_appearance(sprite["type"], c["sprite_feature_dim"])[1]
        if agent_state is not None:
            r, col = divmod(int(agent_state), size)
            block = image[r * p : (r + 1) * p, col * p : (col + 1) * p]
            block[[0, -1], :] = 255
            block[:, [0, -1]] = 255
        return image

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

    def render(self) -> Any:
        """``rgb_array``: the map image with the agent; ``ansi``: a text map."""
        if self.render_mode == "rgb_array":
            return self.map_image(self._state)
        return super().render()

    def _render_ansi(self) -> str:
        size = self.config["size"]
        grid = [[_TERRAIN_CHARS[t] for t in row] for row in self.task.params["terrain"]]
        goal = self.task.params["goal"]["cell"]
        grid[goal[0]][goal[1]] = "G"
        for obstacle in self.task.params["obstacles"]:
            grid[obstacle["cell"][0]][obstacle["cell"][1]] = "X"
        r, col = divmod(self._state, size)
        grid[r][col] = "@"
        header = f"GridWorld {size}x{size} task {self.task.split}/{self.task.index} t={self._t}/{self.model.horizon}\n"
        return header + "\n".join("".join(row) for row in grid) + "\n"
