"""Test-session settings: one torch thread (the kernels are small; with two threads on a two-core
machine that is doing anything else, OpenMP contention makes them 10-100x slower)."""

try:
    import torch
except ImportError:  # the gymnasium-1.x leg tests mandril_envs without torch
    torch = None

if torch is not None:
    torch.set_num_threads(1)
