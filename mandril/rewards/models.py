"""Reward models: torch modules (``torch.nn.Module``) that map a task's inputs to a reward table over its states.

Every model returns ``(S,)`` (or ``(S, A)`` with ``n_actions``) for one task's input and
``(B, S)`` (or ``(B, S, A)``) for a batch of ``B`` inputs, works with
``torch.func.functional_call(model, params, (inputs,))`` and ``torch.func.vmap`` (no buffers, no
batch statistics, no in-place updates of inputs), and is initialised from its own ``seed``
(no global RNG is read or advanced). Its ``batch_invariant`` says whether, under ``vmap`` with
per-task parameters, each task's rewards (and their gradients) are the same bits whichever other
tasks share the call: true of the table and of the convolutions (``vmap`` makes them a grouped
convolution, one product per task); not of the linear layers (a batched matrix product rounds a
batch of one differently).

* :class:`TabularReward`: one free parameter per state (or state-action); reads the feature
  matrix only for its batch shape.
* :class:`LinearReward`: ``r(s) = phi(s) . w`` on the ``feature_matrix`` ``(S, F)``.
* :class:`MLPReward`: an MLP applied to each state's feature row.
* :class:`ConvReward`: a fully convolutional net on a GridWorld map, ``(C, N, N)`` features as
  channels (``map_features()``) or, with ``cell_pixels=5``, the RGB image of the map
  ``(3, 5N, 5N)`` (the paper's pixel setting: a stride-5 convolution first encodes each 5x5 cell,
  then the same layers follow). State ``s = row * N + col``, as in the GridWorld.
"""

from __future__ import annotations

import math
from typing import ClassVar, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["TabularReward", "LinearReward", "MLPReward", "ConvReward", "image_to_tensor", "ACTIVATIONS"]

#: The activations a reward model may use, by name.
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "softplus": nn.Softplus}


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be a sequence of layer widths, got {type(hidden).__name__} {hidden!r}")
    return tuple(_check_positive_int(f"hidden[{i}]", width) for i, width in enumerate(hidden))


def _check_activation(activation: str) -> type[nn.Module]:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]


def _check_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float64, torch.float32):
        raise TypeError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
    return dtype


def _init_(module: nn.Module, generator: torch.Generator, zero_last: bool = False) -> None:
    """Uniform(+-1/sqrt(fan_in)) weights and biases from ``generator`` (PyTorch's default scale)."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            bound = 1.0 / math.sqrt(layer.weight[0].numel())
            for parameter in (layer.weight, layer.bias):
                if parameter is None:
                    continue
                if zero_last and i == len(layers) - 1:
                    parameter.zero_()
                else:
                    parameter.uniform_(-bound, bound, generator=generator)


def _linear(n_in: int, n_out: int, bias: bool, dtype: torch.dtype) -> nn.Linear:
    # skip_init: no global-RNG initialisation (the caller initialises from its own generator)
    return nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias, dtype=dtype)


def _conv(n_in: int, n_out: int, kernel_size: int, stride: int, padding: int, dtype: torch.dtype) -> nn.Conv2d:
    return nn.utils.skip_init(nn.Conv2d, n_in, n_out, kernel_size, stride=stride, padding=padding, dtype=dtype)


def _check_features(features: Tensor, n_features: int, name: str) -> None:
    if not isinstance(features, Tensor):
        raise TypeError(f"{name} input must be a torch.Tensor of shape (S, F) or (B, S, F), got {type(features).__name__}")
    if features.ndim not in (2, 3) or features.shape[-1] != n_features:
        raise ValueError(f"{name} input shape {tuple(features.shape)} must be (S, F) or (B, S, F) with F = {n_features}")


class TabularReward(nn.Module):
    """A reward table with one free parameter per state, ``r(s) = theta[s]`` (or ``theta[s, a]``).

    Args:
        n_states: ``S``.
        n_actions: ``A`` for a state-action reward, ``None`` (default) for a state reward.
        dtype: parameter dtype. The table starts at zero (the MaxEnt likelihood is convex in it).

    Input: the feature matrix ``(S, F)`` or ``(B, S, F)``, used only for its batch shape (and to
    check ``S``); output ``(S,)``/``(B, S)`` (or ``(S, A)``/``(B, S, A)``).
    """

    batch_invariant: ClassVar[bool] = True

    def __init__(self, n_states: int, n_actions: Optional[int] = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.n_states = _check_positive_int("n_states", n_states)
        self.n_actions = None if n_actions is None else _check_positive_int("n_actions", n_actions)
        shape = (self.n_states,) if self.n_actions is None else (self.n_states, self.n_actions)
        self.table = nn.Parameter(torch.zeros(shape, dtype=_check_dtype(dtype)))

    def forward(self, features: Tensor) -> Tensor:
        """``(..., S, F) -> (..., S)`` or ``(..., S, A)``: the table, broadcast over the batch."""
        if not isinstance(features, Tensor) or features.ndim not in (2, 3) or features.shape[-2] != self.n_states:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(f"TabularReward input {shape} must be the feature matrix (S, F) or (B, S, F) with S = {self.n_states}")
        return self.table.expand(*features.shape[:-2], *self.table.shape)


class LinearReward(nn.Module):
    """``r(s) = phi(s) . w (+ b)``; with ``n_actions``, ``r(s, a) = phi(s) . W[:, a] (+ b[a])``.

    Args:
        n_features: ``F``.
        n_actions: ``A`` for a state-action reward, ``None`` (default) for a state reward.
        bias: add a learned constant (it does not change a fixed-horizon MaxEnt policy for state rewards).
        init: ``"zeros"`` (default; MaxEnt IRL is convex in ``w``) or ``"uniform"`` (+-1/sqrt(F)).
        seed: seed of the ``"uniform"`` initialisation.
        dtype: parameter dtype.

    Input ``(S, F)`` or ``(B, S, F)``; output ``(S,)``/``(B, S)`` (or ``(S, A)``/``(B, S, A)``).
    """

    batch_invariant: ClassVar[bool] = False

    def __init__(
        self,
        n_features: int,
        n_actions: Optional[int] = None,
        bias: bool = False,
        init: str = "zeros",
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.n_features = _check_positive_int("n_features", n_features)
        self.n_actions = None if n_actions is None else _check_positive_int("n_actions", n_actions)
        if init not in ("zeros", "uniform"):
            raise ValueError(f"init must be 'zeros' or 'uniform', got {init!r}")
        self.linear = _linear(self.n_features, self.n_actions or 1, bias, _check_dtype(dtype))
        _init_(self, torch.Generator().manual_seed(seed), zero_last=init == "zeros")

    def forward(self, features: Tensor) -> Tensor:
        """``(..., S, F) -> (..., S)`` or ``(..., S, A)``."""
        _check_features(features, self.n_features, type(self).__name__)
        out = self.linear(features)
        return out.squeeze(-1) if self.n_actions is None else out


class MLPReward(nn.Module):
    """An MLP on each state's feature row: ``r(s) = f(phi(s))`` (or ``f(phi(s))[a]`` with ``n_actions``).

    Args:
        n_features: ``F``.
        hidden: widths of the hidden layers (default ``(64, 64)``).
        n_actions: ``A`` for a state-action reward, ``None`` for a state reward.
        activation: one of :data:`ACTIVATIONS` (default ``"relu"``).
        seed: seed of the initialisation.
        dtype: parameter dtype.

    Input ``(S, F)`` or ``(B, S, F)``; output ``(S,)``/``(B, S)`` (or ``(S, A)``/``(B, S, A)``).
    """

    batch_invariant: ClassVar[bool] = False

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = (64, 64),
        n_actions: Optional[int] = None,
        activation: str = "relu",
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.n_features = _check_positive_int("n_features", n_features)
        self.n_actions = None if n_actions is None else _check_positive_int("n_actions", n_actions)
        widths = (self.n_features,) + _check_hidden(hidden)
        act = _check_activation(activation)
        dtype = _check_dtype(dtype)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [_linear(n_in, n_out, True, dtype), act()]
        layers.append(_linear(widths[-1], self.n_actions or 1, True, dtype))
        self.net = nn.Sequential(*layers)
        _init_(self, torch.Generator().manual_seed(seed))

    def forward(self, features: Tensor) -> Tensor:
        """``(..., S, F) -> (..., S)`` or ``(..., S, A)``."""
        _check_features(features, self.n_features, type(self).__name__)
        out = self.net(features)
        return out.squeeze(-1) if self.n_actions is None else out


class ConvReward(nn.Module):
    """A fully convolutional reward map of a GridWorld: ``(C, N p, N p)`` image -> ``(N N,)`` rewards.

    Layers: with ``cell_pixels = p > 1``, first a ``p x p`` convolution of stride ``p`` (one output
    per cell; the RGB map of the GridWorld has ``p = 5``); then ``len(hidden)`` convolutions of
    ``kernel_size`` with "same" padding and the activation; then a 1x1 convolution to one channel
    (``n_actions`` channels for a state-action reward). It is translation-equivariant and works on
    any grid size. The flattened output follows ``s = row * N + col``.

    Args:
        in_channels: ``C``: the GridWorld's feature count ``F`` for ``map_features()`` inputs, 3 for RGB.
        hidden: channel widths (default ``(32, 32)``).
        kernel_size: odd size of the hidden convolutions (default 3).
        cell_pixels: pixels per cell side ``p`` (1 for feature maps, 5 for the RGB map).
        n_actions: ``A`` for a state-action reward, ``None`` for a state reward.
        activation: one of :data:`ACTIVATIONS`.
        seed: seed of the initialisation.
        dtype: parameter dtype.

    Input ``(C, H, W)`` or ``(B, C, H, W)`` with ``H = N p``, ``W = N' p``; output ``(N N',)`` or
    ``(B, N N')`` (or with a trailing ``A``).
    """

    batch_invariant: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        hidden: Sequence[int] = (32, 32),
        kernel_size: int = 3,
        cell_pixels: int = 1,
        n_actions: Optional[int] = None,
        activation: str = "relu",
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.in_channels = _check_positive_int("in_channels", in_channels)
        self.cell_pixels = _check_positive_int("cell_pixels", cell_pixels)
        self.n_actions = None if n_actions is None else _check_positive_int("n_actions", n_actions)
        kernel_size = _check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
        widths = _check_hidden(hidden)
        act = _check_activation(activation)
        dtype = _check_dtype(dtype)
        layers: list[nn.Module] = []
        channels = self.in_channels
        if self.cell_pixels > 1:
            first = widths[0] if widths else channels
            layers += [_conv(channels, first, self.cell_pixels, self.cell_pixels, 0, dtype), act()]
            channels = first
        for width in widths:
            layers += [_conv(channels, width, kernel_size, 1, kernel_size // 2, dtype), act()]
            channels = width
        layers.append(_conv(channels, self.n_actions or 1, 1, 1, 0, dtype))
        self.net = nn.Sequential(*layers)
        _init_(self, torch.Generator().manual_seed(seed))

    def forward(self, image: Tensor) -> Tensor:
        """``(..., C, N p, N' p) -> (..., N N')`` or ``(..., N N', A)``."""
        if not isinstance(image, Tensor):
            raise TypeError(f"ConvReward input must be a torch.Tensor (C, H, W) or (B, C, H, W), got {type(image).__name__}")
        if image.ndim not in (3, 4) or image.shape[-3] != self.in_channels:
            raise ValueError(
                f"ConvReward input shape {tuple(image.shape)} must be (C, H, W) or (B, C, H, W) with C = {self.in_channels} "
                f"(channels first: use map_features() or image_to_tensor(map_image()))"
            )
        height, width = image.shape[-2:]
        if height % self.cell_pixels or width % self.cell_pixels:
            raise ValueError(f"ConvReward input height and width {(height, width)} must be multiples of cell_pixels = {self.cell_pixels}")
        single = image.ndim == 3
        out = self.net(image.unsqueeze(0) if single else image)  # (B, A or 1, N, N')
        out = out.flatten(2).transpose(1, 2)  # (B, N N', A or 1)
        out = out.squeeze(-1) if self.n_actions is None else out
        return out.squeeze(0) if single else out


def image_to_tensor(image: np.ndarray, dtype: torch.dtype = torch.float64) -> Tensor:
    """``(H, W, 3)`` or ``(B, H, W, 3)`` uint8 RGB (``GridWorldEnv.map_image()``) -> channels-first floats in [0, 1]."""
    array = np.asarray(image)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"image shape {array.shape} must be (H, W, 3) or (B, H, W, 3) RGB")
    if array.dtype != np.uint8:
        raise TypeError(f"image must be uint8 RGB (as map_image() returns), got dtype {array.dtype}")
    tensor = torch.as_tensor(array.astype(np.float64) / 255.0, dtype=_check_dtype(dtype))
    return tensor.movedim(-1, -3).contiguous()
