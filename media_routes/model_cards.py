"""What each engine can do: one model card per route id (``local`` or ``<provider>/<model>``).

The router reads these cards to accept or reject a candidate for a stage (capabilities), to respect a
profile's intent (``reinterprets``: the stages where a model may re-interpret content that no later
compositing protects) and to price a call (``price_model`` is the model name in ``credits/prices.yaml``).

Adding a provider: write its adapter module under ``media_routes/providers/``, its stage functions under
``media_routes/hosted/``, and add its cards here (docs/providers.md, "Adding a provider").
"""

from __future__ import annotations

from dataclasses import dataclass

from media_routes.stages import STAGES

LOCAL = "local"

# Aspect ratios the Gemini image models accept (contract section 1), Veo and Kling (sections 2 and 3).
GEMINI_ASPECTS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
VEO_ASPECTS = ("16:9", "9:16")
# Kling image-to-video has no aspect field: the video follows the image (1:2.5 to 2.5:1), so any format.


@dataclass(frozen=True)
class ModelCard:
    id: str
    provider: str  # "local", "google", "fal", "kling": also the name of its concurrency slots
    model: str
    stages: frozenset[str]
    summary: str
    text_rendering: bool = False  # renders exact headline text
    max_long_side: int = 4096  # largest output long side in px
    max_upscale_factor: float | None = None  # per call, for upscalers
    aspect_ratios: tuple[str, ...] | None = None  # None: any canvas
    mask: str = "none"  # "exact" (a mask input), "instruction" (mask as an image + text), "none"
    video_durations_s: tuple[int, ...] = ()
    seed: bool = False
    reinterprets: frozenset[str] = frozenset()  # stages where it may change content outside any protection
    price_model: str = ""  # model name in prices.yaml (defaults to ``model``)
    credentials: tuple[str, ...] = ()  # environment variables the adapter needs
    follows_instructions: bool = False  # can apply an 'instruct' fix

    @property
    def hosted(self) -> bool:
        return self.provider != LOCAL

    @property
    def priced_as(self) -> str:
        return self.price_model or self.model


_GEMINI_KEY = ("GEMINI_API_KEY",)
_FAL_KEY = ("FAL_KEY",)
_KLING_KEYS = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")

CARDS: dict[str, ModelCard] = {
    c.id: c
    for c in (
        ModelCard(
            id=LOCAL,
            provider=LOCAL,
            model="local-engine",
            stages=frozenset(STAGES),
            summary="classical image processing (OpenCV/Pillow/numpy), offline and deterministic",
            text_rendering=True,
            max_upscale_factor=8,
            mask="exact",
            video_durations_s=tuple(range(1, 31)),
            seed=True,
        ),
        ModelCard(
            id="google/gemini-3-pro-image-preview",
            provider="google",
            model="gemini-3-pro-image-preview",
            stages=frozenset({"base_composition", "lighting_iteration", "inpaint_fix", "k_upscale", "aspect_outpaint"}),
            summary="Nano Banana Pro: high-fidelity generation and instruction edits, exact text, 1K/2K/4K",
            text_rendering=True,
            max_long_side=4096,
            aspect_ratios=GEMINI_ASPECTS,
            mask="instruction",
            seed=True,
            reinterprets=frozenset({"lighting_iteration", "k_upscale"}),
            credentials=_GEMINI_KEY,
            follows_instructions=True,
        ),
        ModelCard(
            id="google/gemini-2.5-flash-image",
            provider="google",
            model="gemini-2.5-flash-image",
            stages=frozenset({"base_composition", "lighting_iteration", "inpaint_fix", "aspect_outpaint"}),
            summary="Nano Banana: fast, cheaper edits at about 1K (no imageSize)",
            max_long_side=1024,
            aspect_ratios=GEMINI_ASPECTS,
            mask="instruction",
            seed=True,
            reinterprets=frozenset({"lighting_iteration"}),
            credentials=_GEMINI_KEY,
            follows_instructions=True,
        ),
        ModelCard(
            id="fal/fal-ai/flux-pro/v1/fill",
            provider="fal",
            model="fal-ai/flux-pro/v1/fill",
            stages=frozenset({"inpaint_fix"}),
            summary="FLUX.1 Fill [pro]: regenerates only the mask's area from a prompt",
            mask="exact",
            seed=True,
            credentials=_FAL_KEY,
            follows_instructions=True,
        ),
        ModelCard(
            id="fal/fal-ai/seedvr/upscale/image",
            provider="fal",
            model="fal-ai/seedvr/upscale/image",
            stages=frozenset({"k_upscale"}),
            summary="SeedVR2 restoration upscaler: faithful detail, no re-interpretation",
            max_long_side=8192,
            max_upscale_factor=4,
            seed=True,
            credentials=_FAL_KEY,
        ),
        ModelCard(
            id="fal/fal-ai/esrgan",
            provider="fal",
            model="fal-ai/esrgan",
            stages=frozenset({"k_upscale"}),
            summary="Real-ESRGAN: fast GAN upscaler, faithful but can over-sharpen skin",
            max_long_side=8192,
            max_upscale_factor=4,
            credentials=_FAL_KEY,
        ),
        ModelCard(
            id="fal/fal-ai/clarity-upscaler",
            provider="fal",
            model="fal-ai/clarity-upscaler",
            stages=frozenset({"k_upscale"}),
            summary="Clarity: diffusion upscaler that invents detail (creativity > 0 re-interprets the image)",
            max_long_side=8192,
            max_upscale_factor=4,
            seed=True,
            reinterprets=frozenset({"k_upscale"}),
            credentials=_FAL_KEY,
        ),
        ModelCard(
            id="fal/fal-ai/bria/expand",
            provider="fal",
            model="fal-ai/bria/expand",
            stages=frozenset({"aspect_outpaint"}),
            summary="Bria Expand: places the image on a larger canvas and generates the surroundings",
            max_long_side=5000,
            seed=True,
            credentials=_FAL_KEY,
        ),
        ModelCard(
            id="google/veo-3.1-generate-preview",
            provider="google",
            model="veo-3.1-generate-preview",
            stages=frozenset({"motion"}),
            summary="Veo 3.1: cinematic image-to-video, bold camera moves, 4/6/8 s per call",
            aspect_ratios=VEO_ASPECTS,
            video_durations_s=(4, 6, 8),
            reinterprets=frozenset({"motion"}),
            price_model="veo-3.1",
            credentials=_GEMINI_KEY,
        ),
        ModelCard(
            id="google/veo-3.1-fast-generate-preview",
            provider="google",
            model="veo-3.1-fast-generate-preview",
            stages=frozenset({"motion"}),
            summary="Veo 3.1 Fast: cheaper, faster Veo, 4/6/8 s per call",
            aspect_ratios=VEO_ASPECTS,
            video_durations_s=(4, 6, 8),
            reinterprets=frozenset({"motion"}),
            price_model="veo-3.1-fast",
            credentials=_GEMINI_KEY,
        ),
        ModelCard(
            id="kling/kling-v2-5-turbo",
            provider="kling",
            model="kling-v2-5-turbo",
            stages=frozenset({"motion"}),
            summary="Kling 2.5 Turbo: image-to-video that stays close to the still, 5 or 10 s",
            video_durations_s=(5, 10),
            credentials=_KLING_KEYS,
        ),
        ModelCard(
            id="kling/kling-v2-1",
            provider="kling",
            model="kling-v2-1",
            stages=frozenset({"motion"}),
            summary="Kling 2.1: image-to-video, 5 or 10 s",
            video_durations_s=(5, 10),
            credentials=_KLING_KEYS,
        ),
    )
}


def card(route_id: str) -> ModelCard:
    try:
        return CARDS[route_id]
    except KeyError:
        raise KeyError(f"unknown route {route_id!r}; known routes: {', '.join(CARDS)}") from None
