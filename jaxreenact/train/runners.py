"""The training tasks by ``config.model_name``: one builder of a :class:`loop.Task` per model, in its own module."""
from __future__ import annotations

from jaxreenact.train.dagan_runner import dagan_task
from jaxreenact.train.depth_runner import depth_task
from jaxreenact.train.stargan_v2_runner import stargan_v2_task

TASKS = {"stargan_v2": stargan_v2_task, "dagan": dagan_task, "depth": depth_task}
