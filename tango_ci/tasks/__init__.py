"""Tasks as plug-ins: one module per task, found through :data:`tango_ci.plugins.TASKS`.

Add a task by subclassing :class:`BaseTask` and registering it (see ARCHITECTURE.md).
"""

from tango_ci.plugins import TASKS, get_task, register_task
from tango_ci.tasks._base import (
    BaseTask,
    Evaluator,
    QualityMetric,
    StageFunction,
    evaluation_split,
)

__all__ = [
    "TASKS",
    "BaseTask",
    "Evaluator",
    "QualityMetric",
    "StageFunction",
    "evaluation_split",
    "get_task",
    "register_task",
]
