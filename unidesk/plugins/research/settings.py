"""The research plugin's settings (``unidesk_settings``): keys ``research_<field>``."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["ResearchSettings"]


class ResearchSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Settings of the research plugin. Env var: ``UNIDESK_RESEARCH_<FIELD>``."""

    max_sweep_tasks: Annotated[
        int,
        msgspec.Meta(
            description="Most tasks one parameter sweep of the research plugin may submit; larger "
            "grids are refused with 400.",
            ge=1,
            le=1_000_000,
        ),
    ] = 1000
