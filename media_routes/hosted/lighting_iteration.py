"""Hosted lighting: one relighting edit by an image model, then the local measure-and-correct loop locks
the result to the brief's targets (the model moves the look; the measurements decide when it is locked)."""

from __future__ import annotations

import numpy as np

from media_routes.engine.lighting_iteration import LightingResult, iterate, measure
from media_routes.hosted.common import HostedStage, fit, png
from media_routes.spec import LightingTargets


def relight_hosted(stage: HostedStage, image: np.ndarray, targets: LightingTargets) -> tuple[LightingResult, dict]:
    before = measure(image)
    prompt = stage.styled(
        f"Relight this image without moving or changing anything in it: overall brightness around L* "
        f"{targets.exposure:g} (now {before.exposure:.0f}), white balance about {targets.white_balance_k:.0f} K "
        f"(now {before.white_balance_k:.0f} K), contrast spread about {targets.contrast:g} L*. Keep the text, "
        "the logo and every colour of the brand exactly."
    )
    source = png(image)
    client = stage.hub.gemini.image_client()
    with client:
        relit = stage.image_call(
            "edit",
            {"prompt": prompt},
            {"image": source},
            lambda: client.edit(prompt, model=stage.cand.model, image_png=source, seed=stage.seed).data,
        )
    relit = fit(relit, image.shape[1::-1])
    after = measure(relit)
    locked = iterate(relit, targets)
    hosted = {
        "prompt": prompt,
        "before": before.as_dict(),
        "after_model": after.as_dict(),
        "local_lock_iterations": len(locked.iterations),
    }
    return locked, hosted
