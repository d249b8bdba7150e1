"""A page per registered task family, generated from the gymnasium registry and the env classes.

Every id of the ``mandril_envs/`` namespace is grouped by its env class (its entry point); each class
is a family and gets ``docs/families/<family>.md``: the docstring's sections, a table of its ids (S x A,
horizon, reward kind, splits, observation types), the ``gym.make`` line, and pictures the project
renders itself (``render_mode="rgb_array"``, :mod:`mandril_envs.drawing`): a few tasks of each split, a
drawing of a small MDP's states and transitions (matplotlib), a bandit's arm means, and an animated
GIF of the expert's rollout. What is drawn follows from the model's shape (one state: arm means; up to
:data:`MAX_GRAPH_STATES` states: the transition graph), so a new family needs no code here.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from mandril_docs.docstrings import split_sections
from mandril_docs.pages import docs_dir, prune, write_if_changed

#: The largest number of states drawn as a graph of states and transitions.
MAX_GRAPH_STATES = 40
#: Tasks shown per split.
TASKS_PER_SPLIT = 3
#: Pictures are scaled up to about this many pixels on their longer side (nearest neighbour).
PICTURE_PIXELS = 200


@dataclass
class Family:
    """One env class and its registered ids."""

    name: str
    cls: type
    ids: list[str]

    @property
    def slug(self) -> str:
        """The page's file name: the family in lower case, words split by ``-``."""
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", self.name).lower()


def registered_families(namespace: str = "mandril_envs") -> list[Family]:
    """The families of the namespace's registered ids, in registration order."""
    import mandril_envs  # noqa: F401  (registers the ids)

    families: dict[str, Family] = {}
    for env_id, spec in gym.registry.items():
        if not env_id.startswith(namespace + "/"):
            continue
        entry = spec.entry_point
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            cls = getattr(importlib.import_module(module), attr)
        else:
            cls = entry
        name = getattr(cls, "family", "") or cls.__name__
        families.setdefault(name, Family(name, cls, [])).ids.append(env_id)
    return list(families.values())


def _reward_kind(base: Any) -> str:
    table = base.model.reward_matrix
    kind = "state, r(s)" if table.ndim == 1 else "state-action, r(s, a)"
    noise = base.reward_noise()
    return kind + ("" if noise.kind == "none" else f", {noise.kind} noise" + (f" (std {noise.std:g})" if noise.kind == "gaussian" else ""))


def id_table(family: Family) -> str:
    """A markdown table of the family's ids."""
    rows = ["| id | S x A | horizon | reward | splits | observation types |", "|---|---|---|---|---|---|"]
    for env_id in family.ids:
        env = gym.make(env_id)
        base = env.unwrapped
        rows.append(
            f"| `{env_id}` | {base.state_dim} x {base.action_dim} | {base.horizon} | {_reward_kind(base)} | "
            f"{', '.join(f'`{s}`' for s in base.splits)} | {', '.join(f'`{o}`' for o in base.obs_types)} |"
        )
        env.close()
    return "\n".join(rows)


def _upscale(frame: np.ndarray) -> Image.Image:
    height, width = frame.shape[:2]
    factor = max(1, PICTURE_PIXELS // max(height, width))
    return Image.fromarray(frame).resize((width * factor, height * factor), Image.NEAREST)


def _strip(images: list[Image.Image], gap: int = 8) -> Image.Image:
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    height = max(i.height for i in images)
    out = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for image in images:
        out.paste(image, (x, 0))
        x += image.width + gap
    return out


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def split_pictures(env_id: str) -> dict[str, bytes]:
    """``{split: PNG}``: the ``rgb_array`` render of the first tasks of each split, side by side."""
    env = gym.make(env_id, render_mode="rgb_array")
    base = env.unwrapped
    pictures = {}
    for split in base.splits:
        frames = []
        for task in base.sample_tasks(TASKS_PER_SPLIT, split=split, seed=0):
            env.reset(seed=0, options={"task": task})
            frames.append(_upscale(np.asarray(env.render())))
        pictures[split] = _png(_strip(frames))
    env.close()
    return pictures


def expert_gif(env_id: str) -> bytes:
    """An animated GIF of one episode of the soft expert on the first test task (one frame per step)."""
    from mandril_envs.demos import expert_policy

    env = gym.make(env_id, render_mode="rgb_array")
    base = env.unwrapped
    split = "test" if "test" in base.splits else base.splits[-1]
    env.reset(seed=0, options={"task": base.sample_tasks(1, split=split, seed=0)[0]})
    policy = expert_policy(env)
    rng = np.random.default_rng(0)
    frames = [_upscale(np.asarray(env.render()))]
    for t in range(base.horizon):
        action = int(rng.choice(base.action_dim, p=policy[t, base.state]))
        env.step(action)
        frames.append(_upscale(np.asarray(env.render())))
    env.close()
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=400, loop=0)
    return buffer.getvalue()


def model_figure(env_id: str) -> "tuple[str, bytes] | None":
    """``(caption, PNG)``: the arm means of a few tasks (one state) or the states and transitions of a
    small MDP (matplotlib); ``None`` for models too large to draw as a graph (their map says more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = gym.make(env_id)
    base = env.unwrapped
    n_states = base.state_dim
    if n_states > MAX_GRAPH_STATES:
        return None
    split = "test" if "test" in base.splits else base.splits[-1]
    tasks = base.sample_tasks(TASKS_PER_SPLIT, split=split, seed=0)
    if n_states == 1:
        fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.6), sharey=True)
        for ax, task in zip(np.atleast_1d(axes), tasks):
            base.set_task(task)
            means = np.asarray(base.reward_matrix).reshape(-1)
            ax.bar(np.arange(means.size), means, color=["#e69f00" if k == means.argmax() else "#888888" for k in range(means.size)])
            ax.set_title(f"{split} task {task.index}", fontsize=9)
            ax.set_xlabel("arm")
        np.atleast_1d(axes)[0].set_ylabel("mean reward")
        fig.tight_layout()
        caption = f"Arm means of the first {len(tasks)} `{split}` tasks of `{env_id}` (the best arm in amber)."
    else:
        base.set_task(tasks[0])
        P = base.transition_matrix.mean(axis=1)  # (S, S) under a uniformly random action
        reward = base.reward_matrix if base.reward_matrix.ndim == 1 else base.reward_matrix.mean(axis=1)
        angles = np.pi / 2 - 2 * np.pi * np.arange(n_states) / n_states
        xy = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        for s in range(n_states):
            for s2 in range(n_states):
                if s != s2 and P[s, s2] > 0.08:
                    ax.annotate("", xy=xy[s2] * 0.93, xytext=xy[s] * 0.93,
                                arrowprops=dict(arrowstyle="-|>", color="#1f4e79", alpha=float(min(1.0, 0.15 + P[s, s2])), lw=0.4 + 2.5 * P[s, s2], shrinkA=9, shrinkB=9, connectionstyle="arc3,rad=0.12"))
        scale = float(np.abs(reward).max()) or 1.0
        points = ax.scatter(xy[:, 0], xy[:, 1], s=420, c=reward, cmap="coolwarm", vmin=-scale, vmax=scale, edgecolors="black", zorder=3)
        for s in range(n_states):
            ax.text(xy[s, 0], xy[s, 1], str(s), ha="center", va="center", fontsize=8, zorder=4)
        fig.colorbar(points, ax=ax, label="mean reward of the state (over actions)")
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{split} task {tasks[0].index}: P(s' | s) under a random action", fontsize=9)
        fig.tight_layout()
        caption = (f"The states of the first `{split}` task of `{env_id}` and where a uniformly random action leads "
                   "(arrow width and opacity: the probability; self-loops not drawn; below 0.08 left out).")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    env.close()
    return caption, buffer.getvalue()


def family_page(family: Family, folder: Path) -> tuple[str, set[Path]]:
    """The family's page (MyST) and the picture files it wrote."""
    written: set[Path] = set()
    images = folder / "img" / family.slug
    default = family.ids[0]
    summary, sections = split_sections(inspect.getdoc(family.cls) or "")
    qualname = f"{family.cls.__module__}.{family.cls.__qualname__}"
    lines = [f"# {family.name}", "", summary, ""]
    lines += [f"Env class: {{py:class}}`~{qualname}`. Registered ids:", "", id_table(family), ""]
    lines += ["```python", "import gymnasium as gym", "import mandril_envs  # registers the ids", "",
              f'env = gym.make("{default}", render_mode="rgb_array")',
              "obs, info = env.reset(seed=0)", "frame = env.render()  # (height, width, 3) uint8", "```", ""]
    lines += ["## Pictures", "", f"Rendered at build time by `env.render()` of `{default}` (`render_mode=\"rgb_array\"`), "
              f"the first {TASKS_PER_SPLIT} tasks of each split (task seed 0), scaled up.", ""]
    for split, png in split_pictures(default).items():
        path = images / f"split-{split}.png"
        write_if_changed(path, png)
        written.add(path)
        lines += [f"```{{figure}} img/{family.slug}/{path.name}", f":alt: {family.name}: {split} tasks", "", f"`{split}` tasks {', '.join(str(i) for i in range(TASKS_PER_SPLIT))}", "```", ""]
    figure = model_figure(default)
    if figure is not None:
        caption, png = figure
        path = images / "model.png"
        write_if_changed(path, png)
        written.add(path)
        lines += [f"```{{figure}} img/{family.slug}/model.png", f":alt: {family.name}: the model", "", caption, "```", ""]
    gif = images / "expert.gif"
    write_if_changed(gif, expert_gif(default))
    written.add(gif)
    lines += [f"```{{figure}} img/{family.slug}/expert.gif", f":alt: {family.name}: an expert rollout", "",
              "One episode of the soft expert (`mandril_envs.demos.expert_policy`) on the first test task, one frame per step.", "```", ""]
    for title, body in sections:
        lines += [f"## {title}", "", "```{eval-rst}", f".. currentmodule:: {family.cls.__module__}", "", body, "```", ""]
    return "\n".join(lines), written


def generate(app: Any) -> None:
    """Write ``docs/families/``: an index and a page per registered family, with their pictures."""
    folder = docs_dir(app) / "families"
    written: set[Path] = set()
    families = registered_families()
    for family in families:
        text, pictures = family_page(family, folder)
        path = folder / f"{family.slug}.md"
        write_if_changed(path, text)
        written |= pictures | {path}
    rows = ["| family | ids | what it is |", "|---|---|---|"]
    for family in families:
        summary = split_sections(inspect.getdoc(family.cls) or "")[0].splitlines()[0] if inspect.getdoc(family.cls) else ""
        rows.append(f"| [{family.name}]({family.slug}.md) | {', '.join(f'`{i}`' for i in family.ids)} | {summary} |")
    index = folder / "index.md"
    write_if_changed(
        index,
        "# Task families\n\nEvery registered id of the `mandril_envs/` namespace, by family (generated from the gymnasium "
        "registry and the env classes; the pictures are rendered by the envs themselves when the docs are built).\n\n"
        + "\n".join(rows) + "\n\n```{toctree}\n:hidden:\n\n" + "\n".join(f.slug for f in families) + "\n```\n",
    )
    written.add(index)
    prune(folder, written)
