"""Scoring what a method learned against the true model, the held-out demo protocol, and summaries."""

from mandril.eval.metrics import Scores, demo_nll, expected_value_difference, score
from mandril.eval.protocol import N_HELDOUT, TaskDemos, shown_and_heldout_demos
from mandril.eval.stats import iqm, summarize

__all__ = ["N_HELDOUT", "Scores", "TaskDemos", "demo_nll", "expected_value_difference", "iqm", "score", "shown_and_heldout_demos", "summarize"]
