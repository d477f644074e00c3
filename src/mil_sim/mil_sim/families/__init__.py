"""Registry of task families by name (``placing``, ``reaching``, ``pushing``)."""

from __future__ import annotations

from typing import Any

from mil_sim.core import TaskError, TaskFamily

FAMILY_NAMES = ("placing", "reaching", "pushing")


def get_family(name: str, **config: Any) -> TaskFamily:
    """Instantiate a family; ``config`` overrides fields of that family's config dataclass."""
    if name == "placing":
        from mil_sim.families.placing import PlacingConfig, PlacingFamily

        return PlacingFamily(PlacingConfig(**config))
    if name == "reaching":
        from mil_sim.families.reaching import ReachingConfig, ReachingFamily

        return ReachingFamily(ReachingConfig(**config))
    if name == "pushing":
        from mil_sim.families.pushing import PushingConfig, PushingFamily

        return PushingFamily(PushingConfig(**config))
    raise TaskError(f"unknown task family {name!r}; expected one of {', '.join(FAMILY_NAMES)}")
