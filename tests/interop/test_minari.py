"""Datasets export to Minari: 0.4.3 in the main environment (gymnasium 0.29.1), 0.5.x in CI leg 3 (gymnasium 1.x).

Every test writes into its own temporary Minari root (``MINARI_DATASETS_PATH``) and turns warnings
into errors: an export fills every metadata field Minari asks for. The tests that differ between the
two Minari releases say which they run on (``MINARI_04`` / ``MINARI_05``); both releases run in CI.
"""

import functools
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

minari = pytest.importorskip("minari")
import minari.cli as minari_cli  # noqa: E402
from gymnasium.envs.registration import EnvSpec  # noqa: E402
from minari.serialization import serialize_space  # noqa: E402
from minari.utils import get_dataset_spec_dict, get_env_spec_dict  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mandril_envs import __version__, minari_export  # noqa: E402
from mandril_envs.dataset import MINARI_AUTHOR, MINARI_AUTHOR_EMAIL, MINARI_CODE_PERMALINK, check_minari_dataset_id, collect  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")
DATASET_ID = "mandril-gridworld-test-v0"
RELEASE = tuple(int(part) for part in minari.__version__.split(".")[:2])
MINARI_04 = pytest.mark.skipif(RELEASE != (0, 4), reason=f"Minari 0.4 only; this is {minari.__version__} (0.5 runs in CI leg 3)")
MINARI_05 = pytest.mark.skipif(RELEASE < (0, 5), reason=f"Minari 0.5+ only; this is {minari.__version__} (0.4.3 runs in CI leg 1)")


def _as_set(value):
    """Minari 0.5 reads author and email back as lists, 0.4 as strings."""
    return set(value) if isinstance(value, (list, set, tuple)) else {value}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "300")  # rich's tables: no truncated cells
    return tmp_path


@pytest.fixture(scope="module")
def dataset():
    return collect("mandril_envs/GridWorld-v0", 2, 3, split="test", demo_seed=4)


def test_export_loads_back_and_rebuilds_the_task(store, dataset):
    exported = dataset.to_minari(DATASET_ID, 1)
    loaded = minari.load_dataset(DATASET_ID)
    for minari_dataset in (exported, loaded):
        assert minari_dataset.total_episodes == 3 and minari_dataset.total_steps == 3 * dataset.horizon
        for m, episode in enumerate(minari_dataset.iterate_episodes()):
            np.testing.assert_array_equal(episode.actions, dataset.actions[1, m])
            np.testing.assert_array_equal(episode.observations, dataset.states[1, m])
            np.testing.assert_allclose(episode.rewards, dataset.rewards[1, m])
            assert episode.truncations[-1] and not episode.terminations.any()
            np.testing.assert_array_equal(episode.infos["state"], dataset.states[1, m])
            np.testing.assert_array_equal(episode.infos["t"], np.arange(dataset.horizon + 1))
    for recovered in (loaded.recover_environment(), loaded.recover_environment(eval_env=True)):
        np.testing.assert_array_equal(recovered.unwrapped.reward_matrix, dataset.make_env(1).unwrapped.reward_matrix)


def test_onehot_observations_export_too(store, dataset):
    exported = dataset.to_minari(DATASET_ID, 0, obs_type="onehot")
    episode = next(iter(minari.load_dataset(DATASET_ID).iterate_episodes()))
    assert exported.observation_space.shape == (64,)
    np.testing.assert_array_equal(episode.observations.argmax(axis=1), dataset.states[0, 0])


def test_the_installed_minari_is_asked_what_it_takes():
    fields = minari_export.accepted_fields()
    if RELEASE == (0, 4):
        assert minari_export.episode_buffer_type() is None and "minari_version" in fields and "description" not in fields
    else:
        assert minari_export.episode_buffer_type().__name__ == "EpisodeBuffer"
        assert "minari_version" not in fields and {"description", "requirements"} <= fields


def test_every_metadata_field_minari_reads_is_filled(store, dataset):
    dataset.to_minari(DATASET_ID, 0)
    metadata = minari.list_local_datasets()[DATASET_ID]
    assert _as_set(metadata["author"]) == {MINARI_AUTHOR} and metadata["code_permalink"] == MINARI_CODE_PERMALINK
    assert _as_set(metadata["author_email"]) == {MINARI_AUTHOR_EMAIL} and "eval_env_spec" in metadata
    assert "soft expert" in metadata["algorithm_name"] and f"mandril {__version__}" in MINARI_CODE_PERMALINK
    if RELEASE == (0, 4):
        assert metadata["minari_version"] == "~=0.4"
    else:
        assert metadata["minari_version"] == minari.__version__
        assert "task test/0" in metadata["description"] and "mandril_envs/GridWorld-v0" in metadata["description"]
        assert list(metadata["requirements"]) == [f"mandril>={__version__}"]


def test_minari_list_local_shows_the_export(store, dataset):
    dataset.to_minari(DATASET_ID, 0)
    result = CliRunner().invoke(minari_cli.app, ["list", "local"])
    assert result.exit_code == 0, result.output
    assert DATASET_ID in result.output and "the mandril project" in result.output


@MINARI_04
def test_the_function_behind_minari_show_reads_every_field(store, dataset):
    """``minari show`` builds its tables with ``get_dataset_spec_dict`` and ``get_env_spec_dict``; before
    the metadata was filled the first stopped with ``KeyError: 'code_permalink'``."""
    dataset.to_minari(DATASET_ID, 1)
    metadata = dict(minari.list_local_datasets()[DATASET_ID])
    metadata["action_space"] = serialize_space(metadata["action_space"])  # what show is handed (see below)
    metadata["observation_space"] = serialize_space(metadata["observation_space"])
    table = get_dataset_spec_dict(metadata, print_version=True)
    assert table["Author"] == MINARI_AUTHOR and MINARI_CODE_PERMALINK in table["Code Permalink"]
    assert table["Total Episodes"] == 3 and table["Dataset Action Space"] == "`Discrete(9)`"
    for key in ("env_spec", "eval_env_spec"):
        assert get_env_spec_dict(EnvSpec.from_json(metadata[key]))["ID"] == "mandril_envs/GridWorld-v0"


@MINARI_05
def test_minari_show_command_describes_the_export(store, dataset):
    """``minari show DATASET_ID``, typed as a user types it, on Minari 0.5 (a fresh process)."""
    dataset.to_minari(DATASET_ID, 1)
    command = Path(sys.executable).with_name("minari")
    result = subprocess.run([str(command), "show", DATASET_ID], capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for text in (DATASET_ID, "the mandril project", "DemoDataset.to_minari", "mandril_envs/GridWorld-v0", "Total Episodes", "task test/1"):
        assert text in result.stdout, text


@MINARI_05
def test_recover_environment_in_a_fresh_process(store, dataset):
    """A user who never imported mandril_envs loads the dataset and gets the task's exact env back."""
    dataset.to_minari(DATASET_ID, 1)
    code = (
        "import minari, json; d = minari.load_dataset(%r); env = d.recover_environment(); "
        "print(json.dumps(env.unwrapped.task.to_dict(), sort_keys=True))" % DATASET_ID
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == dataset.tasks[1].to_json()


@MINARI_04
def test_minari_04_show_fails_on_every_local_dataset(store, dataset):
    """The documented Minari 0.4.3 bug: ``minari show`` fails on a local dataset, whatever wrote it
    (its local listing hands it space objects where it asserts strings). Fixed in 0.5 (above)."""
    dataset.to_minari(DATASET_ID, 1)
    result = CliRunner().invoke(minari_cli.app, ["show", DATASET_ID])
    assert result.exit_code != 0 and isinstance(result.exception, (AssertionError, TypeError)), repr(result.exception)


@MINARI_04
def test_minari_04_show_command_describes_the_export_once_listed_as_strings(store, dataset, monkeypatch):
    """``minari show``, the command as shipped, on the export.

    Minari 0.4.3's ``show`` fails on every local dataset, ours or any other: its local listing hands
    it space objects and numpy integers where it asserts strings (AssertionError, then a TypeError
    in rich's Markdown). The remote listing hands it string metadata; here the local listing does
    the same, and the rest of ``show`` runs unchanged.
    """
    dataset.to_minari(DATASET_ID, 1)
    real_listing = minari_cli.local.list_local_datasets

    def listing_as_strings(*args, **kwargs):
        return {
            dataset_id: {key: serialize_space(value) if key.endswith("_space") else str(value) for key, value in metadata.items()}
            for dataset_id, metadata in real_listing(*args, **kwargs).items()
        }

    monkeypatch.setattr(minari_cli.local, "list_local_datasets", listing_as_strings)
    result = CliRunner().invoke(minari_cli.app, ["show", DATASET_ID])
    assert result.exit_code == 0, repr(result.exception)
    for text in (DATASET_ID, "the mandril project", "DemoDataset.to_minari", "mandril_envs/GridWorld-v0", "Evaluation Environment Specs"):
        assert text in result.output, text


@pytest.mark.parametrize(
    "dataset_id",
    ["gridworld", "gridworld-v0", "-gridworld-v0", "mandril/gridworld-v0", "grid world-expert-v0", "gridworld-expert-vX", "../escape-expert-v0", ""],
)
def test_malformed_dataset_ids_are_refused_before_writing(store, dataset, dataset_id):
    with pytest.raises(ValueError, match=r"dataset_id must follow Minari's naming rule 'env-dataset-vN'"):
        dataset.to_minari(dataset_id, 0)
    assert list(store.iterdir()) == []
    dataset.to_minari(DATASET_ID, 0)  # the store still lists and loads
    assert list(minari.list_local_datasets()) == [DATASET_ID]


def test_taken_ids_and_failed_writes_leave_the_store_as_it_was(store, dataset, monkeypatch):
    dataset.to_minari(DATASET_ID, 0)
    with pytest.raises(ValueError, match=rf"dataset_id '{DATASET_ID}' is taken: a Minari dataset already exists"):
        dataset.to_minari(DATASET_ID, 1)
    real_create = minari.create_dataset_from_buffers

    @functools.wraps(real_create)  # the export reads the signature of what it calls
    def create_then_fail(dataset_id, *args, **kwargs):
        real_create(dataset_id, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", create_then_fail)
    with pytest.raises(OSError, match="disk full"):
        dataset.to_minari("mandril-gridworld-other-v0", 1)
    assert sorted(p.name for p in store.iterdir()) == [DATASET_ID]


def test_check_minari_dataset_id():
    assert check_minari_dataset_id("gridworld-expert_2-demos-v10") == "gridworld-expert_2-demos-v10"
    with pytest.raises(ValueError, match="naming rule"):  # Minari 0.5 refuses '.'
        check_minari_dataset_id("gridworld-expert.v2-v0")
    with pytest.raises(TypeError, match="dataset_id must be a string"):
        check_minari_dataset_id(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from minari.dataset.minari_dataset import parse_dataset_id

        parsed = parse_dataset_id("gridworld-expert_2-demos-v10")
    # 0.4: (env, dataset, version); 0.5: (namespace, dataset, version): either way the id is whole
    assert parsed == (("gridworld", "expert_2-demos", 10) if RELEASE == (0, 4) else (None, "gridworld-expert_2-demos", 10))
