"""Task inputs, demos as the kernels consume them (meta-batches), and where training tasks come from."""

from mandril.data.batch import LIKELIHOODS, MetaBatch, check_likelihood, demo_visitation, make_batch, start_distribution
from mandril.data.inputs import INPUT_KINDS, task_inputs
from mandril.data.sources import DatasetSource, GeneratedSource, TaskSource

__all__ = [
    "INPUT_KINDS",
    "LIKELIHOODS",
    "DatasetSource",
    "GeneratedSource",
    "MetaBatch",
    "TaskSource",
    "check_likelihood",
    "demo_visitation",
    "make_batch",
    "start_distribution",
    "task_inputs",
]
