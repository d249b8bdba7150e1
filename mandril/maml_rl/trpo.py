"""The pieces of a TRPO step, on flat parameter vectors.

* :func:`conjugate_gradient` solves ``F x = g`` from matrix-vector products only.
* :func:`exact_hvp` and :func:`finite_difference_hvp` build ``v -> (H + damping I) v`` for the
  Hessian ``H`` of a scalar function (the KL) of the parameters: the first by double backprop,
  the second by a central difference of gradients,
  ``H v ~ (grad f(theta + r v) - grad f(theta - r v)) / (2 r)`` with ``r = eps / |v|``, which
  needs only first derivatives of ``f`` (for MAML: no third derivatives through the inner step).
* :func:`line_search` backtracks along a step and accepts the first fraction whose loss improves
  on the old loss and whose KL is at most ``max_kl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from mandril.functional import Params

__all__ = [
    "flatten",
    "unflatten",
    "conjugate_gradient",
    "exact_hvp",
    "finite_difference_hvp",
    "line_search",
    "LineSearchResult",
]


def flatten(tensors: Sequence[Tensor] | Mapping[str, Tensor]) -> Tensor:
    """Concatenate tensors (or a dict's values, in key order) into one ``(P,)`` vector."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return torch.cat([t.reshape(-1) for t in values])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Split a ``(P,)`` vector into a dict shaped like ``like`` (views, still in ``vector`` 's graph)."""
    total = sum(ref.numel() for ref in like.values())
    if vector.ndim != 1 or vector.numel() != total:
        raise ValueError(f"vector must be 1-D with {total} entries (the parameters'), got shape {tuple(vector.shape)}")
    out: Params = {}
    offset = 0
    for name, ref in like.items():
        n = ref.numel()
        out[name] = vector[offset : offset + n].reshape(ref.shape)
        offset += n
    return out


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10,
                       residual_tol: float = 1e-10) -> tuple[Tensor, float]:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as ``matvec``.

    Args:
        matvec: ``v (P,) -> A v (P,)``.
        b: ``(P,)``.
        iters: at most this many iterations (``P`` iterations solve exactly in exact arithmetic).
        residual_tol: stop when ``|r|^2`` falls below this.

    Returns:
        ``(x (P,), |b - A x|^2 as tracked by the recursion)``.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    b = b.detach()
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr.item() < residual_tol:
            break
        ap = matvec(p).detach()
        alpha = rr / torch.dot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, float(rr)


def exact_hvp(f: Callable[[Params], Tensor], params: Mapping[str, Tensor], damping: float = 0.0) -> Callable[[Tensor], Tensor]:
    """``v -> (H + damping I) v`` with ``H`` the Hessian of ``f`` at ``params``, by double backprop.

    ``f`` is evaluated and differentiated once (with ``create_graph=True``); each product then
    costs one more backward pass. ``params`` must require grad.
    """
    names = list(params)
    leaves = [params[n] for n in names]
    value = f(dict(params))
    grads = flatten(torch.autograd.grad(value, leaves, create_graph=True))

    def hvp(v: Tensor) -> Tensor:
        products = torch.autograd.grad(torch.dot(grads, v.detach()), leaves, retain_graph=True, allow_unused=True)
        flat = flatten([torch.zeros_like(l) if p is None else p for p, l in zip(products, leaves)])
        return flat.detach() + damping * v

    return hvp


def finite_difference_hvp(grad_fn: Callable[[Params], Tensor], params: Mapping[str, Tensor], damping: float = 0.0,
                          eps: float = 1e-5) -> Callable[[Tensor], Tensor]:
    """``v -> (H + damping I) v`` by a central difference of ``grad_fn`` (the flat gradient ``(P,)`` of ``f``).

    ``H v ~ (grad_fn(theta + r v) - grad_fn(theta - r v)) / (2 r)`` with ``r = eps / |v|``: two
    gradient evaluations per product, error ``O(eps^2)``.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    theta = flatten({k: t.detach() for k, t in params.items()})
    like = {k: t.detach() for k, t in params.items()}

    def hvp(v: Tensor) -> Tensor:
        v = v.detach()
        norm = float(v.norm())
        if norm == 0.0:
            return torch.zeros_like(v)
        r = eps / norm
        plus = grad_fn(unflatten(theta + r * v, like)).detach()
        minus = grad_fn(unflatten(theta - r * v, like)).detach()
        return (plus - minus) / (2 * r) + damping * v

    return hvp


@dataclass(frozen=True)
class LineSearchResult:
    """The outcome of :func:`line_search`.

    Attributes:
        accepted: whether some fraction satisfied both conditions.
        step_fraction: the accepted fraction of the full step (0.0 when none was accepted).
        loss: the loss at the accepted point (the old loss when none was).
        kl: the KL at the accepted point (0.0 when none was).
        n_evaluations: how many candidates were evaluated.
    """

    accepted: bool
    step_fraction: float
    loss: float
    kl: float
    n_evaluations: int


def line_search(evaluate: Callable[[float], tuple[float, float]], old_loss: float, max_kl: float,
                max_steps: int = 15, backtrack_ratio: float = 0.8) -> LineSearchResult:
    """Backtracking line search for TRPO.

    Tries the fractions ``1, ratio, ratio^2, ...`` (``max_steps`` of them) of the full step and
    accepts the first one where ``loss < old_loss`` and ``kl <= max_kl`` (a non-finite loss or KL
    is rejected).

    Args:
        evaluate: ``fraction -> (loss, kl)`` at ``theta + fraction * full_step``.
        old_loss: the loss at ``theta``.
        max_kl: the trust-region radius.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if not 0 < backtrack_ratio < 1:
        raise ValueError(f"backtrack_ratio must be in (0, 1), got {backtrack_ratio}")
    fraction = 1.0
    for k in range(max_steps):
        loss, kl = evaluate(fraction)
        if math.isfinite(loss) and math.isfinite(kl) and loss < old_loss and kl <= max_kl:
            return LineSearchResult(True, fraction, float(loss), float(kl), k + 1)
        fraction *= backtrack_ratio
    return LineSearchResult(False, 0.0, float(old_loss), 0.0, max_steps)
