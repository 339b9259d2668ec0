"""The six stage assets, one module per stage, named after the asset key.

``media_routes/defs/stages/<asset>.py`` holds the Dagster wiring and
``media_routes/engine/<asset>.py`` the pure local-engine function it calls.
"""

from media_routes.defs.stages.aspect_outpaint import aspect_outpaint
from media_routes.defs.stages.base_composition import base_composition
from media_routes.defs.stages.inpaint_fix import inpaint_fix
from media_routes.defs.stages.k_upscale import k_upscale
from media_routes.defs.stages.lighting_iteration import lighting_iteration
from media_routes.defs.stages.motion import motion

STAGE_ASSETS = [base_composition, lighting_iteration, inpaint_fix, k_upscale, aspect_outpaint, motion]

__all__ = [
    "STAGE_ASSETS",
    "aspect_outpaint",
    "base_composition",
    "inpaint_fix",
    "k_upscale",
    "lighting_iteration",
    "motion",
]
