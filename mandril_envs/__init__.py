"""mandril_envs: Gymnasium task families with known tabular dynamics, planners and expert demos.

Importing the package registers every id (``mandril_envs/GridWorld-v0`` and friends); it needs
only numpy and gymnasium.
"""

from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
from mandril_envs.registration import ENV_IDS, check_env_id, register_envs
from mandril_envs.tasks import Task

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "TabularModel", "TabularTaskEnv", "Task", "check_env_id", "register_envs", "__version__"]
