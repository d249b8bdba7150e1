"""AIRL, GAIL and behavioural cloning through the ``imitation`` library, behind the method interface.

=========  ======================================  ==========================================
name       what it learns                          read back as
=========  ======================================  ==========================================
``airl``   a reward net (and a PPO generator)      ``(S,)``/``(S, A)`` reward + ``(H, S, A)``
``gail``   a PPO generator (and a discriminator)   ``(H, S, A)`` policy
``bc``     a policy by supervised learning         ``(H, S, A)`` policy
=========  ======================================  ==========================================

Importing this package imports neither imitation nor Stable-Baselines3; a fit does. The
conversions (a task's model -> a Gymnasium env, demos -> imitation trajectories, a reward net -> a
table, a policy -> a table) are :mod:`mandril.methods.imitation.adapters`.
"""

from mandril.methods.imitation.airl import AIRL, AIRLConfig
from mandril.methods.imitation.bc import BC, BCConfig
from mandril.methods.imitation.gail import GAIL, GAILConfig

__all__ = ["AIRL", "AIRLConfig", "BC", "BCConfig", "GAIL", "GAILConfig"]
