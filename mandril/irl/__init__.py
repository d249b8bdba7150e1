"""Inverse RL from scratch: :class:`MaxEntIRL` (finite-horizon MaxEnt / MCE IRL on the torch kernels)."""

from mandril.irl.maxent import FitHistory, MaxEntIRL, MaxEntIRLConfig

__all__ = ["FitHistory", "MaxEntIRL", "MaxEntIRLConfig"]
