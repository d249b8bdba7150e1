"""Discounted returns, generalised advantage estimation and normalisation over padded ``(..., T, B)`` batches.

The time axis is the second to last (``T``), episodes the last (``B``); leading axes (``N`` tasks)
are carried through.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ["discounted_returns", "gae", "normalize"]


def _reverse_scan(x: Tensor, decay: float, mask: Tensor) -> Tensor:
    """``y_t = (x_t + decay * y_{t+1}) * mask_t`` backwards over the time axis ``-2``."""
    out = []
    running = torch.zeros_like(x[..., 0, :])
    for t in range(x.shape[-2] - 1, -1, -1):
        running = (x[..., t, :] + decay * running) * mask[..., t, :]
        out.append(running)
    return torch.stack(out[::-1], dim=-2)


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``(..., T, B)``: ``G_t = sum_{k >= t} gamma^(k-t) r_k`` over unmasked steps (zero on padding)."""
    return _reverse_scan(rewards, gamma, mask)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """``(..., T, B)`` GAE(gamma, lambda) advantages (Schulman et al. 2016).

    ``delta_t = r_t + gamma V_{t+1} - V_t`` with ``V`` zero after the last real step (episodes end
    at the horizon: nothing is paid after it); ``A_t = delta_t + gamma lambda A_{t+1}``.

    Args:
        rewards, values, mask: ``(..., T, B)``.
    """
    if not (rewards.shape == values.shape == mask.shape):
        raise ValueError(f"rewards, values and mask must have the same (..., T, B) shape, got {tuple(rewards.shape)}, "
                         f"{tuple(values.shape)}, {tuple(mask.shape)}")
    values = values * mask
    next_values = torch.cat([values[..., 1:, :], torch.zeros_like(values[..., :1, :])], dim=-2)
    deltas = (rewards + gamma * next_values - values) * mask
    return _reverse_scan(deltas, gamma * lam, mask)


def normalize(x: Tensor, mask: Tensor, eps: float = 1e-8, dims: Optional[Sequence[int]] = None) -> Tensor:
    """``(x - mean) / (std + eps)`` over the unmasked entries (zero on padding).

    Args:
        dims: the axes the mean and std run over (default: all; ``(-2, -1)`` normalises each task
            of an ``(N, T, B)`` batch on its own).
    """
    dims = tuple(range(x.ndim)) if dims is None else tuple(dims)
    count = mask.sum(dim=dims, keepdim=True)
    mean = (x * mask).sum(dim=dims, keepdim=True) / count
    var = (((x - mean) * mask) ** 2).sum(dim=dims, keepdim=True) / count
    return (x - mean) / (var.sqrt() + eps) * mask
