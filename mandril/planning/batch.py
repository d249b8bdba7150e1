"""A batch of B tabular models of the same size, as torch tensors, with its two dynamics primitives.

Every planning kernel of :mod:`mandril.planning` touches the dynamics only through
:meth:`TaskBatch.expected_next` (a backup, ``E[V(s') | s, a]``) and :meth:`TaskBatch.push` (one
step of the state distribution forward), so the dense ``(B, S, A, S)`` and the sparse successor
layouts are interchangeable everywhere.

Layouts:

* ``"sparse"``: the successor form ``(B, S, A, K)`` of :class:`mandril_envs.model.TabularModel`.
  The backup is a gather of ``V`` at the successor indices; the forward step is a sparse CSR
  matrix-vector product with ``P^T``. Memory is ``O(B S A K)``: a 32x32 GridWorld (K = 1) never
  builds the 1024 x 9 x 1024 dense tensor.
* ``"dense"``: ``(B, S, A, S)`` and batched matrix products; faster for small, dense models
  (random tabular MDPs, bandits).
* ``"auto"`` (default): dense when the dense tensor is at most 4 times the size of the successor
  form and below 2^22 entries, else sparse.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from mandril_envs.model import TabularModel

__all__ = ["TaskBatch", "LAYOUTS"]

#: How a batch stores its dynamics: chosen by size, sparse successor form, or dense ``(S, A, S)``.
LAYOUTS = ("auto", "sparse", "dense")
_DENSE_MAX_ENTRIES = 1 << 22
_DENSE_MAX_RATIO = 4

DeviceLike = Union[str, torch.device, None]


def _row_tolerance(dtype: torch.dtype) -> float:
    return 1e-8 if dtype == torch.float64 else 1e-5


def _check_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float64, torch.float32):
        raise TypeError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
    return dtype


def _csr(rows: Tensor, columns: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A CSR matrix from COO triplets (duplicates summed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        coo = torch.sparse_coo_tensor(torch.stack([rows, columns]), values, size, check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def _resolve_layout(layout: str, n_batch: int, n_states: int, n_actions: int, width: int) -> str:
    """``layout``, with ``"auto"`` resolved: dense when the dense tensor is small (see the module docstring)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    if layout != "auto":
        return layout
    small = n_batch * n_states * n_actions * n_states <= _DENSE_MAX_ENTRIES and n_states <= _DENSE_MAX_RATIO * width
    return "dense" if small else "sparse"


def _check_start(p0: Tensor, n_batch: int, n_states: int, probs: Tensor) -> None:
    """``p0`` must be a ``(B, S)`` tensor of distributions, of the dtype and device of ``probs``."""
    if not isinstance(p0, Tensor):
        raise TypeError(f"initial_state_dist must be a torch.Tensor, got {type(p0).__name__}")
    if p0.shape != (n_batch, n_states):
        raise ValueError(f"initial_state_dist shape {tuple(p0.shape)} must be (B, S) = ({n_batch}, {n_states})")
    if p0.dtype != probs.dtype or p0.device != probs.device:
        raise TypeError(
            f"successor_probs ({probs.dtype}, {probs.device}) and initial_state_dist ({p0.dtype}, {p0.device}) must share one dtype and device"
        )
    if not bool(torch.isfinite(p0).all()) or float(p0.min()) < 0 or float((p0.sum(-1) - 1).abs().max()) > _row_tolerance(p0.dtype):
        raise ValueError(f"initial_state_dist rows must be probability distributions, got sums {p0.sum(-1).tolist()[:8]}")


@dataclass(frozen=True)
class _Operators:
    """The index/matrix form of a batch's two primitives (internal layout: actions first).

    Attributes:
        flat_indices: ``(A B S K,)``: ``b * S + successor`` of each ``(a, b, s, k)``, a-major.
        gather_probs: ``(A, B, S, K)`` successor probabilities.
        deterministic: one successor per ``(s, a)`` with probability exactly 1.
        dense: ``(B, A S, S)``, rows a-major (dense layout).
        push_matrix: ``P^T`` as a block-diagonal ``(B S) x (A B S)`` CSR matrix (sparse layout).
        backup_matrix: ``P`` as ``(A B S) x (B S)`` CSR (sparse layout, unless the backup is a gather).
    """

    flat_indices: Tensor
    gather_probs: Tensor
    deterministic: bool
    dense: Optional[Tensor] = None
    push_matrix: Optional[Tensor] = None
    backup_matrix: Optional[Tensor] = None


def _build_operators(indices: Tensor, probs: Tensor, layout: str) -> _Operators:
    """The :class:`_Operators` of successors ``indices`` / ``probs (B, S, A, K)`` in ``layout`` (resolved)."""
    n_batch, n_states, n_actions, width = indices.shape
    device = probs.device
    # (A, B, S, K): flat[a, b, s, k] = b * S + successor; positions of (a, b, s) are a-major.
    offsets = torch.arange(n_batch, device=device).view(1, -1, 1, 1) * n_states
    flat = (indices.permute(2, 0, 1, 3) + offsets).contiguous().reshape(-1)
    gather_probs = probs.permute(2, 0, 1, 3).contiguous()
    deterministic = width == 1 and bool((probs == 1).all())
    positions = torch.arange(n_actions * n_batch * n_states, device=device).repeat_interleave(width)
    if layout == "dense":
        # dense[b, a * S + s, s'] = P(s' | s, a).
        dense = torch.zeros(n_batch, n_actions * n_states, n_states, dtype=probs.dtype, device=device)
        batch_of = positions // n_states % n_batch
        row_of = positions // (n_batch * n_states) * n_states + positions % n_states
        dense.index_put_((batch_of, row_of, flat - batch_of * n_states), gather_probs.reshape(-1), accumulate=True)
        return _Operators(flat, gather_probs, deterministic, dense=dense)
    # push(occupancy) = P^T @ occupancy and, unless the backup is a plain gather, expected_next = P @ values.
    # (A CSR product reads each entry once; a gather-multiply-sum over a trailing K axis is several times
    # slower for K > 1.)
    size = (n_batch * n_states, n_actions * n_batch * n_states)
    push = _csr(flat, positions, gather_probs.reshape(-1), size)
    backup = None if deterministic else _csr(positions, flat, gather_probs.reshape(-1), size[::-1])
    return _Operators(flat, gather_probs, deterministic, push_matrix=push, backup_matrix=backup)


@dataclass(frozen=True, eq=False)
class TaskBatch:
    """B tasks with the same ``S``, ``A`` and horizon ``H``, ready for the torch kernels.

    Build it with :meth:`from_models` (the usual way) or directly from tensors (checked).

    Attributes:
        successor_indices: ``(B, S, A, K)`` int64 next states; padding entries point at ``s``.
        successor_probs: ``(B, S, A, K)`` float, their probabilities (padding has probability 0).
        initial_state_dist: ``(B, S)`` float, the distribution of ``s_0`` of each task.
        horizon: ``H``, shared by every task.
        layout: ``"sparse"`` or ``"dense"`` (``"auto"`` is resolved at construction).
    """

    successor_indices: Tensor
    successor_probs: Tensor
    initial_state_dist: Tensor
    horizon: int
    layout: str = "auto"

    def __post_init__(self) -> None:
        indices, probs, p0 = self.successor_indices, self.successor_probs, self.initial_state_dist
        for name, value in (("successor_indices", indices), ("successor_probs", probs), ("initial_state_dist", p0)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if indices.ndim != 4 or indices.dtype != torch.int64:
            raise ValueError(f"successor_indices must be an int64 (B, S, A, K) tensor, got dtype {indices.dtype} shape {tuple(indices.shape)}")
        if probs.shape != indices.shape:
            raise ValueError(f"successor_probs shape {tuple(probs.shape)} must equal successor_indices shape {tuple(indices.shape)}")
        dtype = _check_dtype(probs.dtype)
        n_batch, n_states, n_actions, _ = indices.shape
        if n_batch < 1 or n_states < 1 or n_actions < 1:
            raise ValueError(f"a batch needs B, S, A >= 1, got (B, S, A) = ({n_batch}, {n_states}, {n_actions})")
        if indices.device != probs.device:
            raise TypeError(f"successor_probs ({probs.device}) and successor_indices ({indices.device}) must be on one device")
        _check_start(p0, n_batch, n_states, probs)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {self.horizon!r}")
        if int(indices.min()) < 0 or int(indices.max()) >= n_states:
            raise ValueError(f"successor_indices must lie in [0, {n_states}), got range [{int(indices.min())}, {int(indices.max())}]")
        if not bool(torch.isfinite(probs).all()) or float(probs.min()) < 0:
            raise ValueError("successor_probs must be finite and non-negative")
        row_error = (probs.sum(-1) - 1).abs()
        if float(row_error.max()) > _row_tolerance(dtype):
            b, s, a = np.unravel_index(int(row_error.argmax()), tuple(row_error.shape))
            raise ValueError(
                f"transition rows must sum to 1: task {b}, row (s={s}, a={a}) sums to {float(probs[b, s, a].sum())!r}"
            )
        object.__setattr__(self, "horizon", int(self.horizon))
        object.__setattr__(self, "layout", _resolve_layout(self.layout, *indices.shape))

    @cached_property
    def _operators(self) -> _Operators:
        """The index/matrix form of the two primitives, built on first use (a batch that only carries
        dynamics for others, e.g. one whose likelihood starts from the demos' states, never builds them)."""
        return _build_operators(self.successor_indices, self.successor_probs, self.layout)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_models(
        cls,
        models: Sequence[TabularModel],
        dtype: torch.dtype = torch.float64,
        device: DeviceLike = None,
        layout: str = "auto",
    ) -> "TaskBatch":
        """Stack the dynamics of ``models`` (their rewards are not used: the kernels take rewards).

        Successor forms of different widths are padded to the largest ``K`` with zero-probability
        entries. All models must have the same ``S``, ``A`` and horizon.

        Raises:
            TypeError: if an entry is not a :class:`TabularModel`, or ``dtype`` is not float32/64.
            ValueError: for an empty list, or models of different sizes or horizons.
        """
        _check_dtype(dtype)
        if isinstance(models, TabularModel):
            models = [models]
        models = list(models)
        if not models:
            raise ValueError("models must be a non-empty sequence of TabularModel, got an empty one")
        for i, model in enumerate(models):
            if not isinstance(model, TabularModel):
                raise TypeError(f"models[{i}] must be a mandril_envs TabularModel, got {type(model).__name__}")
        sizes = sorted({(m.state_dim, m.action_dim) for m in models})
        if len(sizes) > 1:
            raise ValueError(f"models must all have the same (S, A) to be batched, got {sizes}")
        horizons = sorted({m.horizon for m in models})
        if len(horizons) > 1:
            raise ValueError(f"models must all have the same horizon to be batched, got horizons {horizons}: batch tasks by horizon")
        width = max(m.n_successors for m in models)
        n_states, n_actions = sizes[0]
        indices = np.empty((len(models), n_states, n_actions, width), np.int64)
        probs = np.zeros((len(models), n_states, n_actions, width))
        indices[:] = np.arange(n_states)[None, :, None, None]
        for b, model in enumerate(models):
            indices[b, :, :, : model.n_successors] = model.successor_indices
            probs[b, :, :, : model.n_successors] = model.successor_probs
        p0 = np.stack([m.initial_state_dist for m in models])
        return cls(
            torch.as_tensor(indices, device=device),
            torch.as_tensor(probs, dtype=dtype, device=device),
            torch.as_tensor(p0, dtype=dtype, device=device),
            horizons[0],
            layout,
        )

    def select(self, indices: Union[Sequence[int], Tensor], layout: Optional[str] = None) -> "TaskBatch":
        """The sub-batch of the tasks at ``indices``, e.g. the tasks still being fitted; in this batch's
        layout, or in ``layout`` (``"auto"``: chosen for the sub-batch's size, as :meth:`from_models` does,
        e.g. meta-batches drawn from a large sparse pool).

        The rows of a checked batch are checked rows, so the sub-batch is not checked again (a fit's
        backtracking selects thousands of sub-batches); its operators are built when first used.
        """
        index = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        if index.ndim != 1 or index.numel() == 0:
            raise ValueError(f"indices must be a non-empty 1-D list of task positions, got shape {tuple(index.shape)}")
        if int(index.min()) < -self.batch_size or int(index.max()) >= self.batch_size:
            raise IndexError(f"indices must lie in [-{self.batch_size}, {self.batch_size}) (task positions), got range [{int(index.min())}, {int(index.max())}]")
        indices_picked = self.successor_indices[index]
        layout = self.layout if layout is None else _resolve_layout(layout, *indices_picked.shape)
        return self._of_checked_rows(indices_picked, self.successor_probs[index], self.initial_state_dist[index], layout)

    def with_start(self, initial_state_dist: Tensor) -> "TaskBatch":
        """The same dynamics started from ``initial_state_dist (B, S)`` (checked; e.g. the demos' own first
        states). It shares this batch's operators (built here if they were not)."""
        _check_start(initial_state_dist, self.batch_size, self.n_states, self.successor_probs)
        batch = self._of_checked_rows(self.successor_indices, self.successor_probs, initial_state_dist, self.layout)
        batch.__dict__["_operators"] = self._operators
        return batch

    def _of_checked_rows(self, successor_indices: Tensor, successor_probs: Tensor, initial_state_dist: Tensor, layout: str) -> "TaskBatch":
        """A batch of this one's horizon in ``layout`` (resolved) from rows of checked batches (not checked again)."""
        batch = object.__new__(TaskBatch)
        for name, value in (
            ("successor_indices", successor_indices), ("successor_probs", successor_probs), ("initial_state_dist", initial_state_dist),
            ("horizon", self.horizon), ("layout", layout),
        ):
            object.__setattr__(batch, name, value)
        return batch

    def to(self, device: DeviceLike = None, dtype: Optional[torch.dtype] = None) -> "TaskBatch":
        """The same batch on another device and/or dtype (same layout)."""
        dtype = self.dtype if dtype is None else _check_dtype(dtype)
        return TaskBatch(
            self.successor_indices.to(device),
            self.successor_probs.to(device=device, dtype=dtype),
            self.initial_state_dist.to(device=device, dtype=dtype),
            self.horizon,
            self.layout,
        )

    # --- sizes -------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.successor_indices.shape[0])

    @property
    def n_states(self) -> int:
        """``S``."""
        return int(self.successor_indices.shape[1])

    @property
    def n_actions(self) -> int:
        """``A``."""
        return int(self.successor_indices.shape[2])

    @property
    def n_successors(self) -> int:
        """``K``, the (padded) width of the successor form."""
        return int(self.successor_indices.shape[3])

    @property
    def dtype(self) -> torch.dtype:
        """float64 or float32."""
        return self.successor_probs.dtype

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.successor_probs.device

    def transition_matrix(self) -> Tensor:
        """``(B, S, A, S)`` dense transitions (built on demand for the sparse layout: mind the memory)."""
        dense_form = self._operators.dense if self.layout == "dense" else None  # a sparse batch builds no operators here
        if dense_form is not None:
            return dense_form.view(self.batch_size, self.n_actions, self.n_states, self.n_states).transpose(1, 2)
        dense = torch.zeros(self.batch_size, self.n_states, self.n_actions, self.n_states, dtype=self.dtype, device=self.device)
        return dense.scatter_add_(3, self.successor_indices, self.successor_probs)

    # --- the two dynamics primitives ---------------------------------------------------------
    # Internally every (s, a) table is stored actions first, (A, B, S): reductions over actions
    # are then element-wise operations on contiguous (B, S) slices, several times faster than
    # reducing a trailing axis of size A.
    @property
    def deterministic(self) -> bool:
        """True when every ``(s, a)`` has one successor with probability exactly 1 (sparse layout only)."""
        return self.layout == "sparse" and self._operators.deterministic

    def expected_next(self, values: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """``(A, B, S)``: ``E[values[b, s'] | s, a]`` for ``values`` of shape ``(B, S)`` (differentiable).

        Note the actions-first layout of the result (``.permute(1, 2, 0)`` gives ``(B, S, A)``).
        ``out`` (a contiguous ``(A, B, S)`` tensor, no autograd) receives the result of a
        :attr:`deterministic` batch, where the backup is a pure gather. Its adjoint is :meth:`push`.
        """
        if self.layout == "sparse" and torch.is_grad_enabled() and values.requires_grad:
            return _ExpectedNext.apply(values, self)
        return self._expected_next(values, out)

    def push(self, occupancy: Tensor) -> Tensor:
        """``(B, S)``: ``sum_{s, a} occupancy[a, b, s] P(s' | s, a)`` for an ``(A, B, S)`` occupancy.

        One step of a state(-action) distribution forward in time (differentiable in ``occupancy``;
        its adjoint is :meth:`expected_next`).
        """
        if self.layout == "sparse" and torch.is_grad_enabled() and occupancy.requires_grad:
            return _Push.apply(occupancy, self)
        return self._push(occupancy)

    def _expected_next(self, values: Tensor, out: Optional[Tensor] = None) -> Tensor:
        n_batch, n_states, n_actions = self.batch_size, self.n_states, self.n_actions
        ops = self._operators
        if ops.dense is not None:
            expected = torch.bmm(ops.dense, values.unsqueeze(-1))  # (B, A S, 1)
            return expected.view(n_batch, n_actions, n_states).transpose(0, 1)
        if ops.deterministic:
            if out is not None:
                return torch.index_select(values.reshape(-1), 0, ops.flat_indices, out=out.view(-1)).view(out.shape)
            return values.reshape(-1).index_select(0, ops.flat_indices).view(n_actions, n_batch, n_states)
        return (ops.backup_matrix @ values.reshape(-1)).view(n_actions, n_batch, n_states)

    def _push(self, occupancy: Tensor) -> Tensor:
        n_batch, n_states = self.batch_size, self.n_states
        ops = self._operators
        if ops.dense is not None:
            flat = occupancy.transpose(0, 1).reshape(n_batch, 1, -1)
            return torch.bmm(flat, ops.dense).view(n_batch, n_states)
        return (ops.push_matrix @ occupancy.reshape(-1)).view(n_batch, n_states)

    def __repr__(self) -> str:
        return (
            f"TaskBatch(B={self.batch_size}, S={self.n_states}, A={self.n_actions}, K={self.n_successors}, "
            f"H={self.horizon}, layout={self.layout!r}, dtype={self.dtype}, device={self.device})"
        )


class _ExpectedNext(torch.autograd.Function):
    """The sparse backup ``P values``; backward ``P^T grad`` (a push), so every order is differentiable."""

    @staticmethod
    def forward(ctx, values: Tensor, batch: TaskBatch) -> Tensor:  # type: ignore[override]
        ctx.batch = batch
        return batch._expected_next(values)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return ctx.batch.push(grad.contiguous()), None


class _Push(torch.autograd.Function):
    """The sparse forward step ``P^T occupancy``; backward ``P grad`` (a backup)."""

    @staticmethod
    def forward(ctx, occupancy: Tensor, batch: TaskBatch) -> Tensor:  # type: ignore[override]
        ctx.batch = batch
        return batch._push(occupancy)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return ctx.batch.expected_next(grad.contiguous()), None
