"""Reusable nox sessions that release a Python service to a package index and as Docker images.

The sessions (``from brewblox_release.sessions import *`` in a noxfile), the invoke tasks
(`brewblox_release.invoke`) and the command line (``brewblox-release``) are the front-ends
(docs/sessions.md). Under them, this is the library's API::

    import brewblox_release as br

    run = br.prepare(".", br.Options())   # the context, the version and the plan; nothing done
    print(run.info.version, run.plan.render(), sep="\n")
    print(br.release(run).render())       # carried out: what ``nox -s release`` does

Everything else is the implementation, and may change in any release.
"""

from __future__ import annotations

from ._ci import CiContext, Event
from ._config import Config, Target
from ._errors import ReleaseError
from ._plan import ImagePlan, Plan, make_plan
from ._prepared import Options, Run, Summary
from ._release import prepare, release

__all__ = ["CiContext", "Config", "Event", "ImagePlan", "Options", "Plan", "ReleaseError", "Run",
           "Summary", "Target", "make_plan", "prepare", "release"]


def __dir__() -> list[str]:
    return list(__all__)
