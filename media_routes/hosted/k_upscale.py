"""Hosted K-level upscaling: a fal upscaler (SeedVR2, ESRGAN, Clarity) or a Gemini 2K/4K regeneration,
then an exact resize to the K-level's long side. The stage measures over-sharpening on the result
against a Lanczos reference, whatever produced it."""

from __future__ import annotations

import math

import cv2
import numpy as np

from media_routes.credits.ledger import Units
from media_routes.engine.k_upscale import UpscaleResult
from media_routes.hosted.common import HostedStage, fit, png


def upscale_hosted(
    stage: HostedStage, image: np.ndarray, target_long_side: int, subject_mask: np.ndarray | None
) -> UpscaleResult:
    h, w = image.shape[:2]
    scale = target_long_side / max(w, h)
    out_size = (round(w * scale), round(h * scale))
    source = png(image)
    cand = stage.cand
    if cand.provider == "fal":
        factor = min(4, math.ceil(scale))
        client = stage.hub.fal.client()
        with client:
            raw = stage.image_call(
                "upscale",
                {"factor": factor},
                {"image": source},
                lambda: client.upscale(source, model=cand.model, factor=factor, seed=stage.seed),
                units=Units(megapixels=round(w * h * factor * factor / 1e6, 3)),
            )
    else:
        size = "4K" if target_long_side > 2048 else "2K"
        prompt = stage.styled(
            "Re-render this exact image at higher resolution: same composition, text, colours and faces; add only "
            "fine, natural detail."
        )
        client = stage.hub.gemini.image_client()
        with client:
            raw = stage.image_call(
                "regenerate",
                {"prompt": prompt, "image_size": size},
                {"image": source},
                lambda: client.edit(prompt, model=cand.model, image_png=source, image_size=size, seed=stage.seed).data,
            )
    returned = raw.shape[1::-1]
    mask = None
    if subject_mask is not None:
        mask = cv2.resize(subject_mask, out_size, interpolation=cv2.INTER_LINEAR)
    return UpscaleResult(
        image=fit(raw, out_size),
        subject_mask=mask,
        metrics={"factor": round(scale, 4), "hosted_size": f"{returned[0]}x{returned[1]}"},
    )
