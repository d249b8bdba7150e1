"""The linear feature baseline of Duan et al. (2016), refit per task and per inner step.

Features of step ``t`` with observation ``o_t`` (``D`` entries):
``[o_t, o_t^2, t/H, (t/H)^2, (t/H)^3, 1]`` (``2D + 4`` entries; ``H`` the horizon, so the time
features lie in ``[0, 1)``), zeroed on padded steps. The weights solve the ridge problem
``(X^T X + c I) w = X^T G`` for the discounted returns ``G``; when the solve is not finite the ridge
``c`` is multiplied by 10 and the solve retried. The solve is ``torch.linalg.lstsq(A, B,
driver="gelsd")`` (see ``_DRIVER``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LinearFeatureBaseline", "baseline_features"]

# The CPU default driver, MKL's gelsy, is not reproducible: its result depends on MKL's internal
# buffer state (earlier calls of other sizes), which broke "same seed, same numbers". The SVD
# driver gelsd is reproducible and robust to the near-collinear features (obs and obs^2 of one-hot
# observations are equal).
_DRIVER = "gelsd"


def baseline_features(observations: Tensor, mask: Tensor) -> Tensor:
    """``(..., T, B, D), (..., T, B) -> (..., T, B, 2D + 4)`` features, zero where ``mask`` is zero.

    Leading axes (e.g. ``N`` tasks) are carried through.
    """
    if observations.ndim < 3 or mask.shape != observations.shape[:-1]:
        raise ValueError(f"observations must be (..., T, B, D) and mask (..., T, B), got {tuple(observations.shape)} and {tuple(mask.shape)}")
    horizon = observations.shape[-3]
    t = (torch.arange(horizon, dtype=observations.dtype) / horizon).reshape(horizon, 1, 1).expand(*observations.shape[:-1], 1)
    ones = torch.ones_like(t)
    features = torch.cat([observations, observations**2, t, t**2, t**3, ones], dim=-1)
    return features * mask.unsqueeze(-1)


class LinearFeatureBaseline:
    """``V(o_t, t) = features(o_t, t) . w`` fitted by ridge regression.

    With leading axes (``N`` tasks) one weight vector is fitted per task, in one batched solve.

    Args:
        reg_coeff: the initial ridge coefficient ``c > 0``.
        max_tries: how many times the ridge may be raised x10 before giving up.

    Attributes:
        weight: ``(..., 2D + 4)`` the last fitted weights (``None`` before the first fit).
        last_reg: the largest ridge coefficient the last fit used.
    """

    def __init__(self, reg_coeff: float = 1e-5, max_tries: int = 5) -> None:
        if not reg_coeff > 0:
            raise ValueError(f"reg_coeff must be > 0, got {reg_coeff!r}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries!r}")
        self.reg_coeff, self.max_tries = float(reg_coeff), int(max_tries)
        self.weight: Tensor | None = None
        self.last_reg = self.reg_coeff

    def fit(self, observations: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
        """Fit ``w`` to ``returns`` ``(..., T, B)`` over the unmasked steps of ``observations`` ``(..., T, B, D)``.

        Each leading index (task) gets its own fit; a task whose solve is not finite is solved again
        with its ridge raised x10 (the others keep theirs).

        Returns:
            ``(..., 2D + 4)`` weights (also kept in ``weight``).

        Raises:
            FloatingPointError: if no ridge up to ``reg_coeff * 10**(max_tries-1)`` gives finite weights.
        """
        features = baseline_features(observations, mask)
        lead = features.shape[:-3]
        n_features = features.shape[-1]
        features = features.reshape(-1, features.shape[-3] * features.shape[-2], n_features)  # (M, T*B, F)
        target = (returns * mask).reshape(features.shape[0], -1, 1)
        gram = features.transpose(1, 2) @ features
        rhs = features.transpose(1, 2) @ target
        eye = torch.eye(n_features, dtype=gram.dtype)
        weight = torch.full((features.shape[0], n_features), float("nan"), dtype=gram.dtype)
        todo = torch.arange(features.shape[0])
        reg = self.reg_coeff
        for _ in range(self.max_tries):
            try:  # solves A X = B: A first
                solved = torch.linalg.lstsq(gram[todo] + reg * eye, rhs[todo], driver=_DRIVER).solution[..., 0]
            except torch.linalg.LinAlgError:
                solved = torch.full((len(todo), n_features), float("nan"), dtype=gram.dtype)
            weight[todo] = solved
            self.last_reg = reg
            todo = todo[~torch.isfinite(solved).all(dim=1)]
            if len(todo) == 0:
                self.weight = weight.reshape(*lead, n_features)
                return self.weight
            reg *= 10.0
        raise FloatingPointError(f"linear baseline: the ridge solve is not finite even with reg_coeff={reg / 10:g}")

    def predict(self, observations: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
        """``(..., T, B)`` baseline values (zero on padded steps) with ``weight`` ``(..., F)`` (default: the last fit)."""
        weight = self.weight if weight is None else weight
        if weight is None:
            raise RuntimeError("predict() before fit(): fit the baseline first")
        return (baseline_features(observations, mask) @ weight[..., None, :, None]).squeeze(-1)
