"""The evaluation protocol's one demo-seeding function: which demos a method sees and which are held out.

For a held-out task, demo seed ``seed`` and ``n`` demos, the task's demo stream
(:func:`mandril_envs.demos.task_demos`) is rolled out for ``n_heldout + n`` episodes: the first
``n_heldout`` are held out (scored by ``demo_nll``, never shown to a method) and the next ``n`` are
shown. Episodes do not depend on how many follow them, so the demos shown at ``n = 1`` are the first
of those shown at ``n = 2``: settings are nested, and paired across methods. The benchmark,
``mandril adapt`` and the tuning sweeps all use this function.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from mandril_envs.demos import ExpertSettings, task_demos
from mandril_envs.validation import check_int

__all__ = ["TaskDemos", "shown_and_heldout_demos", "N_HELDOUT"]

#: Held-out demos per task for ``demo_nll`` (never shown to a method).
N_HELDOUT = 8


@dataclass(frozen=True)
class TaskDemos:
    """The demos of one held-out task.

    Attributes:
        states, actions: the ``n`` demos shown to the method, ``(n, H+1)`` and ``(n, H)``.
        heldout_states, heldout_actions: ``(n_heldout, H+1)``, ``(n_heldout, H)``, for ``demo_nll``.
    """

    states: np.ndarray
    actions: np.ndarray
    heldout_states: np.ndarray
    heldout_actions: np.ndarray

    def first(self, n: int) -> "TaskDemos":
        """The demos of the same task and seed with ``n`` shown (``1 <= n <=`` those shown here): the first
        ``n`` shown, the same held out; episodes do not depend on how many follow them, so this equals
        :func:`shown_and_heldout_demos` with ``n`` bit for bit."""
        n = check_int("n", n, 1)
        if n > len(self.states):
            raise ValueError(f"n must be at most the {len(self.states)} demos shown here, got {n}")
        return TaskDemos(self.states[:n].copy(), self.actions[:n].copy(), self.heldout_states.copy(), self.heldout_actions.copy())


def shown_and_heldout_demos(env: gym.Env, n: int, seed: int, expert: ExpertSettings = ExpertSettings(), n_heldout: int = N_HELDOUT) -> TaskDemos:
    """The demos of the env's current task that a method sees (``n``) and those held out (``n_heldout``)."""
    n = check_int("n", n, 1)
    n_heldout = check_int("n_heldout", n_heldout, 0)
    states, actions, _ = task_demos(env, n_heldout + n, seed, expert)
    return TaskDemos(states[n_heldout:], actions[n_heldout:], states[:n_heldout], actions[:n_heldout])
