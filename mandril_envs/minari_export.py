"""Writing a Minari dataset with whichever Minari is installed (0.4.3 under gymnasium 0.29, 0.5.x under 1.x).

Minari changed what ``minari.create_dataset_from_buffers`` takes between 0.4 and 0.5: 0.4 takes
episode dicts and a ``minari_version`` specifier; 0.5 takes ``EpisodeBuffer`` objects, writes its
own version, and adds ``description`` and ``requirements``. Rather than branch on version numbers,
:func:`create_dataset` asks the installed Minari: it passes each optional field only if the
function's signature has it, and wraps the episodes in ``minari.data_collector.EpisodeBuffer``
only where that is a dataclass (0.5; in 0.4 the name is a ``Dict`` alias inside the module).

Minari is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym

__all__ = ["import_minari", "episode_buffer_type", "accepted_fields", "create_dataset"]


def import_minari() -> Any:
    """The ``minari`` module, or an ImportError naming the extra to install."""
    try:
        import minari
    except ImportError:
        raise ImportError("Minari export needs Minari: pip install 'mandril[minari]'") from None
    return minari


def episode_buffer_type() -> Any:
    """Minari 0.5's ``EpisodeBuffer`` dataclass, or ``None`` where Minari takes plain episode dicts (0.4)."""
    try:
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        return None
    return EpisodeBuffer if dataclasses.is_dataclass(EpisodeBuffer) else None


def accepted_fields() -> frozenset[str]:
    """The keyword arguments the installed ``minari.create_dataset_from_buffers`` takes."""
    return frozenset(inspect.signature(import_minari().create_dataset_from_buffers).parameters)


def create_dataset(
    dataset_id: str,
    episodes: Sequence[Mapping[str, Any]],
    env: gym.Env,
    metadata: Mapping[str, Any],
    optional: Mapping[str, Any],
) -> Any:
    """Write ``episodes`` as the Minari dataset ``dataset_id``; return the ``MinariDataset``.

    Args:
        dataset_id: a free id of the local store (the caller checked it).
        episodes: one dict per episode (``observations``, ``actions``, ``rewards``, ``terminations``,
            ``truncations``, ``infos``), wrapped in ``EpisodeBuffer`` where Minari wants it.
        env: the env (and evaluation env) whose spec is stored.
        metadata: fields every Minari takes (``algorithm_name``, ``author``, ...).
        optional: fields passed only where the installed Minari takes them (``minari_version``
            for 0.4; ``description``, ``requirements`` for 0.5).

    A write that fails removes what it wrote (Minari leaves a half-written folder that breaks the
    listing of the whole store).
    """
    minari = import_minari()
    from minari.storage import get_dataset_path

    accepted = accepted_fields()
    kwargs = {**metadata, **{key: value for key, value in optional.items() if key in accepted}}
    buffer_type = episode_buffer_type()
    buffers = [dict(episode) if buffer_type is None else buffer_type(**episode) for episode in episodes]
    root = Path(get_dataset_path(dataset_id))
    try:
        return minari.create_dataset_from_buffers(dataset_id, buffer=buffers, env=env, eval_env=env, **kwargs)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
