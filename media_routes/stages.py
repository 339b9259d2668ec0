"""The six stages, declared once: their order, how each is partitioned, the spec slice each reads.

Everything that needs to know the stages (spec validation, routing, jobs, automation, lineage, export, the
command line, the rehearsal) imports them from here. For any stage ``<name>``:

* ``media_routes/defs/stages/<name>.py``: its Dagster asset (checks, automation, metadata);
* ``media_routes/engine/<name>.py``: its local-engine function (pure, no Dagster);
* ``media_routes/hosted/<name>.py``: its hosted route (provider adapters under ``media_routes/providers/``);
* its slice of the campaign spec: :attr:`Stage.spec_fields` below (hashed by :mod:`media_routes.spec_slices`).

Partition keys: stages 1-4 are partitioned by ``campaign`` (dynamic), stages 5-6 by ``campaign`` x ``format``;
Dagster joins the dimensions of a multi-partition key in alphabetical order of their names:
``<campaign>|<format>``. This module has no Dagster import, so the lowest layers can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CAMPAIGN_DIMENSION = "campaign"
FORMAT_DIMENSION = "format"
KEY_SEPARATOR = "|"

Automation = Literal["eager", "eager_in_spec_formats", "eager_in_spec_formats_approved"]


@dataclass(frozen=True)
class Stage:
    name: str
    number: int
    per_format: bool  # campaign x format (stages 5-6); else per campaign (stages 1-4)
    spec_fields: tuple[str, ...]  # top-level spec fields it reads, besides its own ``route.<name>`` entry
    automation: Automation  # how declarative automation follows it (media_routes/defs/automation.py)
    summary: str


# Palette and quality feed the brand-colour map made by the first stage and every check after it, so they
# sit in the first stage's slice.
DECLARED: tuple[Stage, ...] = (
    Stage("base_composition", 1, False, ("scene", "palette", "seed", "quality"), "eager", "the blueprint"),
    Stage("lighting_iteration", 2, False, ("lighting",), "eager", "lighting measured and locked"),
    Stage("inpaint_fix", 3, False, ("fixes",), "eager", "surgical masked fixes"),
    Stage("k_upscale", 4, False, ("upscale",), "eager", "2K / 4K upscale"),
    Stage("aspect_outpaint", 5, True, ("outpaint",), "eager_in_spec_formats", "one still per delivery format"),
    Stage("motion", 6, True, ("motion",), "eager_in_spec_formats_approved", "image-to-video per format"),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in DECLARED}
STAGES: tuple[str, ...] = tuple(s.name for s in DECLARED)
CAMPAIGN_STAGES: tuple[str, ...] = tuple(s.name for s in DECLARED if not s.per_format)
FORMAT_STAGES: tuple[str, ...] = tuple(s.name for s in DECLARED if s.per_format)
(
    BASE_COMPOSITION,
    LIGHTING_ITERATION,
    INPAINT_FIX,
    K_UPSCALE,
    ASPECT_OUTPAINT,
    MOTION,
) = STAGES
FIRST_STAGE = STAGES[0]
STILL_STAGE = ASPECT_OUTPAINT  # the per-format still an operator approves before motion


def get_stage(name: str) -> Stage:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None


def is_format_stage(name: str) -> bool:
    return get_stage(name).per_format


def downstream_of(name: str) -> list[str]:
    """The stage and everything after it, in pipeline order."""
    return list(STAGES[STAGES.index(get_stage(name).name) :])


def upstream_of(name: str) -> str | None:
    """The stage whose output this stage reads (None for the first)."""
    i = STAGES.index(get_stage(name).name)
    return STAGES[i - 1] if i else None


def campaign_format_key(campaign: str, fmt: str) -> str:
    """The partition key string of a campaign x format stage: ``<campaign>|<format>``."""
    return f"{campaign}{KEY_SEPARATOR}{fmt}"


def split_campaign_format(key: str) -> tuple[str, str]:
    """``<campaign>|<format>`` back into its parts."""
    campaign, fmt = key.split(KEY_SEPARATOR, 1)
    return campaign, fmt


def partition_key(stage: str, campaign: str, fmt: str | None = None) -> str:
    """The partition key of ``stage`` for a campaign (and format, for stages 5-6)."""
    if is_format_stage(stage):
        if fmt is None:
            raise ValueError(f"{stage} is partitioned by campaign x format: a format is needed")
        return campaign_format_key(campaign, fmt)
    return campaign
