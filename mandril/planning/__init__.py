"""Batched, differentiable finite-horizon planning in torch: the engine of MaxEnt IRL and MandRIL.

* :class:`TaskBatch`: B tabular models as tensors (sparse successor or dense layout).
* :func:`soft_value_iteration`, :func:`state_visitation`, :func:`state_action_visitation`,
  :func:`expected_visitation`, :func:`log_partition`: the kernels (:mod:`mandril.planning.kernels`).
* :func:`maxent_nll`, :func:`empirical_visitation`: the MaxEnt IRL loss (:mod:`mandril.planning.loss`).

Time convention: ``H`` rewarded steps ``t = 0 .. H-1``, visitation with ``H`` rows (the same as
:mod:`mandril_envs.planning`; imitation's occupancy measures have ``H + 1`` rows).
"""

from mandril.planning.batch import LAYOUTS, TaskBatch
from mandril.planning.kernels import (
    METHODS,
    SoftPlan,
    expected_visitation,
    log_partition,
    soft_value_iteration,
    state_action_visitation,
    state_visitation,
)
from mandril.planning.loss import empirical_visitation, maxent_nll

__all__ = [
    "LAYOUTS",
    "METHODS",
    "SoftPlan",
    "TaskBatch",
    "empirical_visitation",
    "expected_visitation",
    "log_partition",
    "maxent_nll",
    "soft_value_iteration",
    "state_action_visitation",
    "state_visitation",
]
