"""Hosted inpainting: 'remove' and 'instruct' fixes regenerated inside their masks by a fill model
(FLUX Fill: mask input; Gemini: the mask as an image with an instruction). Whatever the model returns,
only the feathered mask's pixels are taken from it: outside the mask the input is kept byte for byte.
'replace' fixes use the provided patch (local), as there is nothing to generate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from media_routes.credits.ledger import Units
from media_routes.engine.inpaint_fix import FixLayer, InpaintResult, apply_fix, blend_layer, feather, rasterize_mask
from media_routes.hosted.common import HostedStage, fit, png
from media_routes.spec import Fix


def _prompt(fix: Fix) -> str:
    if fix.action == "instruct":
        return str(fix.instruction)
    return f"Remove the {fix.name.replace('-', ' ')} and fill the area with the surrounding background, seamlessly."


def _caller(
    stage: HostedStage, src: bytes, mask_png: bytes, prompt: str, clients: dict[str, Any]
) -> Callable[[], bytes]:
    """The provider call for one fix (one client per provider, reused across the fixes)."""
    if stage.cand.provider == "fal":
        fal_client = clients.setdefault("fal", stage.hub.fal.client())
        return lambda: fal_client.inpaint(src, mask_png, prompt=prompt, seed=stage.seed)
    gem = clients.setdefault("google", stage.hub.gemini.image_client())
    return lambda: gem.edit(prompt, model=stage.cand.model, image_png=src, mask_png=mask_png, seed=stage.seed).data


def fix_hosted(stage: HostedStage, image: np.ndarray) -> InpaintResult:
    current = image.copy()
    h, w = image.shape[:2]
    layers: list[FixLayer] = []
    union = np.zeros((h, w), np.uint8)
    clients: dict[str, Any] = {}
    try:
        for i, fix in enumerate(stage.campaign.spec.fixes):
            if fix.action == "replace":
                layer = apply_fix(current, fix, stage.campaign, np.random.default_rng([stage.seed, i]))
            else:
                hard = rasterize_mask(fix.mask, (w, h), stage.campaign)
                alpha = feather(hard, fix.feather)
                src, mask_png = png(current), png(np.where(alpha > 0, 255, 0).astype(np.uint8))
                prompt = stage.styled(_prompt(fix))
                fn = _caller(stage, src, mask_png, prompt, clients)
                generated = stage.image_call(
                    "inpaint",
                    {"prompt": prompt, "fix": fix.name},
                    {"image": src, "mask": mask_png},
                    fn,
                    units=Units(images=1),
                )
                gen = fit(generated, (w, h))
                rgba = np.dstack([np.where(alpha[..., None] > 0, gen, 0).astype(np.uint8), alpha])
                metrics: dict[str, float] = {"mask_px": int((hard > 0).sum()), "feathered_px": int((alpha > 0).sum())}
                layer = FixLayer(name=fix.name, action=fix.action, alpha=alpha, rgba=rgba, metrics=metrics)
            current = blend_layer(current, layer)  # only where alpha > 0: the rest stays byte-identical
            union = np.maximum(union, layer.alpha)
            layers.append(layer)
    finally:
        for c in clients.values():
            c.close()
    return InpaintResult(image=current, layers=layers, changed_mask=union)
