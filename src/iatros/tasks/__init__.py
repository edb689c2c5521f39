"""Tasks: what to predict, from which data, split how, audited on which attributes."""

from iatros.tasks.base import Task, TaskData
from iatros.tasks.registry import (
           get_task,
           list_families,
           list_tasks,
           register_family,
           register_task,
)

__all__ = ["Task", "TaskData", "get_task", "list_families", "list_tasks", "register_family",
           "register_task"]
