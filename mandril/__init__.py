"""mandril: meta-inverse RL (MandRIL), MaxEnt IRL and baselines, MAML-TRPO, and a benchmark harness."""

__version__ = "0.1.0"
