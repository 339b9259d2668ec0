"""Hosted base composition: the local layout rendered by an image model (Nano Banana Pro).

The local compositor's layout (subjects placed, exact headline) goes in as the reference image, so the
subject mask and the headline's place stay known; the model renders the scene from it. The headline's
brand colour is located again in the model's output (see the stage), not assumed.
"""

from __future__ import annotations

from media_routes.engine.base_composition import BaseResult
from media_routes.hosted.common import HostedStage, fit, palette_words, png


def prompt_for(stage: HostedStage) -> str:
    spec = stage.campaign.spec
    subjects = ", ".join(layer.name for layer in spec.scene.layers) or "the scene"
    text = (
        f' The headline reads exactly "{spec.scene.headline.text}" in {spec.scene.headline.color.replace("_", " ")},'
        " same font weight, position and size as in the reference; do not add any other text."
        if spec.scene.headline
        else " Do not add any text."
    )
    return stage.styled(
        f"Render this layout as a finished advertising photograph. Brief: {spec.brief.strip()} Keep every element "
        f"({subjects}) where the reference places it, same proportions. Brand colours: {palette_words(stage.campaign)}."
        + text
    )


def compose_hosted(stage: HostedStage, layout: BaseResult) -> BaseResult:
    spec = stage.campaign.spec
    w, h = spec.scene.canvas_size
    layout_png = png(layout.image)
    prompt = prompt_for(stage)
    size = "1K" if stage.cand.model.startswith("gemini-3") else None
    client = stage.hub.gemini.image_client()
    with client:
        image = stage.image_call(
            "edit",
            {"prompt": prompt, "aspect_ratio": spec.scene.aspect, "image_size": size},
            {"layout": layout_png},
            lambda: (
                client.edit(
                    prompt,
                    model=stage.cand.model,
                    image_png=layout_png,
                    aspect_ratio=spec.scene.aspect,
                    image_size=size,
                    seed=stage.seed,
                ).data
            ),
        )
    returned = image.shape[1::-1]
    return BaseResult(
        image=fit(image, (w, h)),
        subject_mask=layout.subject_mask,
        metrics={**layout.metrics, "hosted_size": f"{returned[0]}x{returned[1]}", "prompt": prompt},
        headline_alpha=None,
    )
