"""The pipelines plugin's settings (``unidesk_settings``): keys ``pipelines_<field>``."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["PipelinesSettings"]


class PipelinesSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Settings of the pipelines plugin. Env var: ``UNIDESK_PIPELINES_<FIELD>``."""

    max_points_per_step: Annotated[
        int,
        msgspec.Meta(
            description="Most matrix points (tasks) one pipeline step may fan out to; a larger "
            "matrix is refused with 400 at submit.",
            ge=1,
            le=100_000,
        ),
    ] = 256
    max_tasks: Annotated[
        int,
        msgspec.Meta(
            description="Most tasks one pipeline may submit in all its steps (one round); a "
            "larger pipeline is refused with 400 at submit.",
            ge=1,
            le=1_000_000,
        ),
    ] = 1000
