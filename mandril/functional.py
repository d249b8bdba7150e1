"""The functional inner loop shared by MandRIL and MAML-RL: gradient steps on a parameter dict.

Parameters are plain ``dict[str, Tensor]`` (as ``torch.func.functional_call`` takes them), so an
adapted parameter set is just another dict whose tensors stay in the autograd graph of the
meta-parameters (second order) or are cut from it (first order).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Union

import torch
from torch import Tensor

__all__ = ["Params", "NonFiniteLossError", "gradient_step", "adapt"]

#: A model's parameters by name (what ``torch.func.functional_call`` takes).
Params = dict[str, Tensor]
LearningRate = Union[float, Mapping[str, Tensor]]


class NonFiniteLossError(FloatingPointError, ValueError):
    """A loss (or gradient) became NaN or infinite; the message says at which step."""


def gradient_step(params: Mapping[str, Tensor], loss: Tensor, lr: LearningRate, *, first_order: bool = False) -> Params:
    """One step ``phi = params - lr * d loss / d params``.

    Args:
        params: the parameters the loss was computed from (tensors that require grad).
        loss: a scalar tensor.
        lr: a float, or a dict of per-parameter learning rates (Meta-SGD) broadcastable to each parameter.
        first_order: if True the gradient is treated as a constant (no graph through it), which is
            first-order MAML; otherwise the graph is kept so the result can be differentiated twice.

    Returns:
        A new dict with the same keys.
    """
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order, allow_unused=True)
    stepped: Params = {}
    for name, grad in zip(names, grads):
        if grad is None:
            stepped[name] = params[name]
            continue
        if not torch.isfinite(grad).all():
            raise NonFiniteLossError(f"gradient of the inner loss for parameter {name!r} is not finite")
        rate = lr[name] if isinstance(lr, Mapping) else lr
        stepped[name] = params[name] - rate * grad
    return stepped


def adapt(
    loss_fn: Callable[[Params], Tensor],
    params: Mapping[str, Tensor],
    lr: LearningRate,
    steps: int,
    *,
    first_order: bool = False,
) -> tuple[Params, list[float]]:
    """``steps`` gradient steps of ``loss_fn`` from ``params``.

    Returns:
        ``(adapted params, [loss before each step])``.

    Raises:
        NonFiniteLossError: naming the step at which the loss or a gradient stopped being finite.
        ValueError: if ``steps`` is negative.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    current: Params = dict(params)
    losses: list[float] = []
    for step in range(steps):
        loss = loss_fn(current)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(f"inner loss is {value} at inner step {step}: the inner learning rate is probably too large")
        losses.append(value)
        try:
            current = gradient_step(current, loss, lr, first_order=first_order)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(f"{error} at inner step {step}") from None
    return current, losses
