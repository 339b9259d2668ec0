"""Hosted outpainting: Bria Expand (fal) or a Gemini edit of the placed image on the expanded canvas.

The model works at delivery scale (cheaper, within its size limits); its fill is then brought to the
master's canvas and the original is put back pixel for pixel (``engine.aspect_outpaint.place_on_fill``),
so ``original_pixels_preserved`` holds for every route."""

from __future__ import annotations

import numpy as np

from media_routes.engine.aspect_outpaint import OutpaintResult, place_on_fill, placement_on_canvas
from media_routes.formats import DeliveryFormat
from media_routes.hosted.common import HostedStage, fit, png


def outpaint_hosted(
    stage: HostedStage,
    image: np.ndarray,
    fmt: DeliveryFormat,
    delivery_size: tuple[int, int],
    *,
    anchor: tuple[float, float],
    subject_mask: np.ndarray | None,
) -> OutpaintResult:
    h, w = image.shape[:2]
    (cw, ch), (x, y, _, _) = placement_on_canvas(w, h, fmt.aspect, anchor)
    if (cw, ch) == (w, h):  # the master already has the format's aspect: nothing to generate, no call
        return place_on_fill(image, image, fmt.aspect, delivery_size, anchor=anchor, subject_mask=subject_mask)
    s = delivery_size[0] / cw  # work at delivery scale
    dw, dh = delivery_size
    sx, sy = min(dw - 1, round(x * s)), min(dh - 1, round(y * s))
    pw, ph = min(dw - sx, max(1, round(w * s))), min(dh - sy, max(1, round(h * s)))
    small = fit(image, (pw, ph))
    small_png = png(small)
    prompt = stage.styled("Extend the scene naturally beyond the frame; keep the original area unchanged.")
    if stage.cand.provider == "fal":
        client = stage.hub.fal.client()
        with client:
            fill = stage.image_call(
                "expand",
                {"canvas": [dw, dh], "at": [sx, sy], "prompt": prompt},
                {"image": small_png},
                lambda: client.outpaint(
                    small_png, canvas_size=(dw, dh), original_image_location=(sx, sy), prompt=prompt, seed=stage.seed
                ),
            )
    else:
        canvas = np.full((dh, dw, 3), 128, np.uint8)
        canvas[sy : sy + ph, sx : sx + pw] = small
        canvas_png = png(canvas)
        prompt = stage.styled(
            "The grey area around the picture is empty canvas: extend the scene into it naturally; keep the picture "
            "itself exactly as it is."
        )
        aspect = f"{fmt.aspect_w}:{fmt.aspect_h}"
        client = stage.hub.gemini.image_client()
        with client:
            fill = stage.image_call(
                "expand",
                {"prompt": prompt, "aspect_ratio": aspect},
                {"canvas": canvas_png},
                lambda: (
                    client.edit(
                        prompt, model=stage.cand.model, image_png=canvas_png, aspect_ratio=aspect, seed=stage.seed
                    ).data
                ),
            )
    result = place_on_fill(image, fill, fmt.aspect, delivery_size, anchor=anchor, subject_mask=subject_mask)
    result.metrics["hosted_size"] = f"{fill.shape[1]}x{fill.shape[0]}"
    return result
