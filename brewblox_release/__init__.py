"""Reusable nox sessions that release a Python service to a package index and as Docker images.

The library under the sessions is importable on its own::

    from brewblox_release import config, ci, version, make_plan
    cfg = config.load(".")
    plan = make_plan(ci.detect(), version.read(cfg.root).version, cfg)
    print(plan.render())
"""

from __future__ import annotations

from .ci import CiContext, Event
from .config import Config, Target
from .errors import ReleaseError
from .plan import ImagePlan, Plan, make_plan

__all__ = ["CiContext", "Config", "Event", "ImagePlan", "Plan", "ReleaseError", "Target",
           "make_plan"]
