"""Which part of a campaign spec each stage depends on, hashed, so an edit re-runs only what it touches.

Editing one inpaint fix changes only the ``inpaint_fix`` slice: the campaign sensor records it as a
new data version of ``campaign_spec/inpaint_fix`` (:mod:`media_routes.defs.campaign_specs`), so
Dagster marks ``inpaint_fix`` stale and automation re-runs it and what follows, not
``base_composition``. Files the spec refers to (cutouts, masks, patches, fonts) are hashed into the
slice of the stage that reads them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from media_routes.spec import Campaign, ImageLayer
from media_routes.stages import DECLARED, STAGES

# Top-level spec fields read by each stage (besides its own route entry), as declared in media_routes/stages.py.
SLICE_FIELDS: dict[str, tuple[str, ...]] = {s.name: s.spec_fields for s in DECLARED}


def _files(campaign: Campaign, stage: str) -> list[str]:
    spec = campaign.spec
    if stage == "base_composition":
        files = [layer.source for layer in spec.scene.layers if isinstance(layer, ImageLayer)]
        if spec.scene.headline and not spec.scene.headline.font.startswith("builtin:"):
            files.append(spec.scene.headline.font)
        return files
    if stage == "inpaint_fix":
        return [f for fix in spec.fixes for f in (fix.mask.png, fix.patch) if f]
    return []


def route_slice(campaign: Campaign, stage: str) -> dict[str, Any]:
    """What decides a stage's route: the override, or the profile's candidates and settings for it.

    Editing a profile file therefore makes the stages it routes differently stale, not all of them.
    """
    from media_routes.routing.profiles import ProfileError, load_profile

    route = campaign.spec.route
    override = route.override_for(stage)
    if override is not None:
        return {"override": override}
    try:
        profile = load_profile(route.profile)
    except ProfileError:
        return {"profile": route.profile, "missing": True}
    settings = profile.model_dump(include={"intent", "reroute_on_block", "chain_video", "prefer", "prompt_style"})
    return {"profile": route.profile, "candidates": profile.stages[stage], **settings}


def stage_slice_hashes(campaign: Campaign) -> dict[str, str]:
    """A hash per stage of the spec fields and files that stage reads."""
    data: dict[str, Any] = campaign.spec.model_dump(mode="json")
    out = {}
    for stage in STAGES:
        h = hashlib.sha256()
        part = {k: data[k] for k in SLICE_FIELDS[stage]} | {"route": route_slice(campaign, stage)}
        h.update(json.dumps(part, sort_keys=True).encode())
        for rel in sorted(_files(campaign, stage)):
            h.update(rel.encode())
            h.update(campaign.resolve(rel).read_bytes())
        out[stage] = h.hexdigest()[:16]
    return out


def earliest_changed(old: dict[str, str], new: dict[str, str]) -> str | None:
    """The first stage (pipeline order) whose slice changed, or None."""
    return next((s for s in STAGES if old.get(s) != new.get(s)), None)
