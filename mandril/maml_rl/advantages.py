"""Discounted returns, generalised advantage estimation and normalisation over padded ``(T, B)`` batches."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discounted_returns", "gae", "normalize"]


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``(T, B)``: ``G_t = sum_{k >= t} gamma^(k-t) r_k`` over unmasked steps (zero on padding)."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = (rewards[t] + gamma * running) * mask[t]
        returns[t] = running
    return returns


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """``(T, B)`` GAE(gamma, lambda) advantages (Schulman et al. 2016).

    ``delta_t = r_t + gamma V_{t+1} - V_t`` with ``V`` zero after the last real step (episodes end
    at the horizon: nothing is paid after it); ``A_t = delta_t + gamma lambda A_{t+1}``.

    Args:
        rewards, values, mask: ``(T, B)``.
    """
    if not (rewards.shape == values.shape == mask.shape):
        raise ValueError(f"rewards, values and mask must have the same (T, B) shape, got {tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(mask.shape)}")
    values = values * mask
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])])
    deltas = (rewards + gamma * next_values - values) * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = (deltas[t] + gamma * lam * running) * mask[t]
        advantages[t] = running
    return advantages


def normalize(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``(x - mean) / (std + eps)`` over the unmasked entries (zero on padding)."""
    count = mask.sum()
    mean = (x * mask).sum() / count
    var = (((x - mean) * mask) ** 2).sum() / count
    return (x - mean) / (var.sqrt() + eps) * mask
