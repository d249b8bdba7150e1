"""Test-session settings: one torch thread (the kernels are small; with two threads on a two-core
machine that is doing anything else, OpenMP contention makes them 10-100x slower)."""

try:
    import torch
except ImportError:  # the gymnasium-1.x leg tests mandril_envs without torch
    torch = None

if torch is not None:
    torch.set_num_threads(1)

# The numerical tests: the files whose assertions compare floating-point results with a tolerance
# (cross-checks between implementations, batch == single, fits to convergence or precision). They
# carry the `numerics` marker, and CI (.ci/run) runs them a second time under another MKL/ATen code
# path, so that a tolerance that only one instruction set reaches fails there first. A tolerance in
# them is one float64 reaches on any CPU: derived from the problem's scale and conditioning, or
# measured with margin under both code paths.
NUMERICAL_TEST_FILES = (
    "tests/envs/test_planning.py",
    "tests/mandril/test_fit_precision.py",
    "tests/mandril/test_maml_baseline.py",
    "tests/mandril/test_maml_batched.py",
    "tests/mandril/test_maml_reference.py",
    "tests/mandril/test_maml_trpo.py",
    "tests/mandril/test_maxent.py",
    "tests/mandril/test_meta_trainer.py",
    "tests/mandril/test_metrics.py",
    "tests/mandril/test_planning_kernels.py",
    "tests/mandril/test_reward_models.py",
)


def pytest_collection_modifyitems(config, items):
    import pytest

    root = config.rootpath
    missing = [name for name in NUMERICAL_TEST_FILES if not (root / name).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: NUMERICAL_TEST_FILES names files that do not exist: {missing}")
    wanted = {root / name for name in NUMERICAL_TEST_FILES}
    for item in items:
        if item.path in wanted:
            item.add_marker(pytest.mark.numerics)
