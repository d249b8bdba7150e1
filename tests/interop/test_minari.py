"""Datasets export to Minari 0.4.3 (main environment, where the minari extra is installed).

Every test writes into its own temporary Minari root (``MINARI_DATASETS_PATH``) and turns warnings
into errors: an export fills every metadata field Minari asks for.
"""

import warnings

import numpy as np
import pytest

minari = pytest.importorskip("minari")
import minari.cli as minari_cli  # noqa: E402
from gymnasium.envs.registration import EnvSpec  # noqa: E402
from minari.serialization import serialize_space  # noqa: E402
from minari.utils import get_dataset_spec_dict, get_env_spec_dict  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mandril_envs.dataset import MINARI_AUTHOR, MINARI_CODE_PERMALINK, check_minari_dataset_id, collect  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")
DATASET_ID = "mandril-gridworld-test-v0"


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
    for recovered in (loaded.recover_environment(), loaded.recover_environment(eval_env=True)):
        np.testing.assert_array_equal(recovered.unwrapped.reward_matrix, dataset.make_env(1).unwrapped.reward_matrix)


def test_every_metadata_field_minari_reads_is_filled(store, dataset):
    dataset.to_minari(DATASET_ID, 0)
    metadata = minari.list_local_datasets()[DATASET_ID]
    assert metadata["author"] == MINARI_AUTHOR and metadata["code_permalink"] == MINARI_CODE_PERMALINK
    assert metadata["author_email"] and metadata["minari_version"] == "~=0.4" and "eval_env_spec" in metadata
    assert "soft expert" in metadata["algorithm_name"]


def test_minari_list_local_shows_the_export(store, dataset):
    dataset.to_minari(DATASET_ID, 0)
    result = CliRunner().invoke(minari_cli.app, ["list", "local"])
    assert result.exit_code == 0, result.output
    assert DATASET_ID in result.output and "the mandril project" in result.output


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


def test_minari_show_command_describes_the_export(store, dataset, monkeypatch):
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

    def create_then_fail(dataset_id, *args, **kwargs):
        real_create(dataset_id, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", create_then_fail)
    with pytest.raises(OSError, match="disk full"):
        dataset.to_minari("mandril-gridworld-other-v0", 1)
    assert sorted(p.name for p in store.iterdir()) == [DATASET_ID]


def test_check_minari_dataset_id():
    assert check_minari_dataset_id("gridworld-expert.v2-demos-v10") == "gridworld-expert.v2-demos-v10"
    with pytest.raises(TypeError, match="dataset_id must be a string"):
        check_minari_dataset_id(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from minari.dataset.minari_dataset import parse_dataset_id

        assert parse_dataset_id("gridworld-expert.v2-demos-v10") == ("gridworld", "expert.v2-demos", 10)
