"""Every method behind one interface (:class:`Method`), in a registry.

    >>> from mandril import methods
    >>> method = methods.make("maxent_tabular", lr=0.05, l2=0.01)
    >>> output = method.fit(model, inputs, states, actions, seed=0)   # MethodOutput(reward=(S,))

=====================  ==========  ======================================================
name                   kind        what it is
=====================  ==========  ======================================================
``mandril``            meta-irl    MandRIL: meta-learned reward prior + adaptation steps
``pretrain_finetune``  meta-irl    one reward model pre-trained on all tasks, fine-tuned
``demo_conditioned``   meta-irl    a network from (task, demos) to reward
``maxent``             irl         MaxEnt IRL from scratch, neural reward (conv / MLP)
``maxent_linear``      irl         MaxEnt IRL from scratch, linear reward on features
``maxent_tabular``     irl         MaxEnt IRL from scratch, one reward per state
``airl``               imitation   AIRL through imitation (its reward net, as a table)
``gail``               imitation   GAIL through imitation (its generator, as a policy)
``bc``                 imitation   behavioural cloning through imitation (a policy)
``map_prior``          meta-irl    MaxEnt with a Gaussian prior fitted on the training tasks (MAP)
``expert``             reference   the true reward (EVD 0)
``bayes``              reference   posterior mode under the family's true prior (the limit)
``zero_reward``        reference   the all-zero reward (no information)
``uniform_policy``     reference   uniform random actions (normalized EVD 1)
=====================  ==========  ======================================================
"""

from __future__ import annotations

from typing import Any

from mandril.methods.base import (
    METHOD_KINDS,
    DivergenceError,
    FitError,
    FitProblem,
    Method,
    MethodOutput,
    NotPreparedError,
    check_problem,
    hide_reward,
)
from mandril.methods.bayes import Bayes
from mandril.methods.demo_conditioned import DemoConditioned
from mandril.methods.fitting import FitSettings, fit_rewards
from mandril.methods.imitation import AIRL, BC, GAIL
from mandril.methods.mandril import MandRILMethod
from mandril.methods.map_prior import MapPrior
from mandril.methods.maxent import MaxEnt, MaxEntIRL, MaxEntLinear, MaxEntTabular
from mandril.methods.meta_trainer import MandRIL, MandRILConfig
from mandril.methods.pretrain_finetune import PretrainFinetune
from mandril.methods.references import Expert, UniformPolicy, ZeroReward

__all__ = [
    "METHODS",
    "METHOD_KINDS",
    "DivergenceError",
    "FitError",
    "FitProblem",
    "FitSettings",
    "MandRIL",
    "MandRILConfig",
    "MaxEntIRL",
    "Method",
    "MethodOutput",
    "NotPreparedError",
    "check_problem",
    "fit_rewards",
    "hide_reward",
    "make",
]

_CLASSES: tuple[type[Method], ...] = (
    MandRILMethod,
    PretrainFinetune,
    DemoConditioned,
    MapPrior,
    MaxEnt,
    MaxEntLinear,
    MaxEntTabular,
    AIRL,
    GAIL,
    BC,
    Expert,
    Bayes,
    ZeroReward,
    UniformPolicy,
)

#: name -> method class.
METHODS: dict[str, type[Method]] = {cls.name: cls for cls in _CLASSES}


def make(name: str, **config: Any) -> Method:
    """A new method ``name`` of :data:`METHODS` with config fields ``config`` (checked: unknown keys are refused).

    Raises:
        ValueError: an unknown method name (the message lists the known ones) or a bad setting.
        TypeError: a setting of the wrong type.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name](**config)
