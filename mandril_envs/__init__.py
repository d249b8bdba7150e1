"""mandril_envs: Gymnasium task families with known tabular dynamics, planners and expert demos.

Importing the package registers every id (``mandril_envs/GridWorld-v0`` and friends); it needs
only numpy and gymnasium. Where you cannot import it first (an id handed to another program, a
config file, a fresh worker process), name the module in the id and gymnasium imports it for you:
``gym.make("mandril_envs:mandril_envs/GridWorld-v0")``. Without either, ``gym.make`` of a
``mandril_envs/`` id fails: the namespace is not registered yet.

``mandril_envs.testing.check_all(env_id)`` runs every reusable env check, prints one line and
returns a report of what passed.
"""

from mandril_envs._version import __version__
from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
from mandril_envs.registration import ENV_IDS, check_env_id, register_envs
from mandril_envs.tasks import Task

register_envs()

__all__ = ["ENV_IDS", "TabularModel", "TabularTaskEnv", "Task", "check_env_id", "register_envs", "__version__"]
