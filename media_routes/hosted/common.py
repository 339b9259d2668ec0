"""What every hosted stage function shares: the accounted call, image coding, prompts."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from media_routes.credits.ledger import Units
from media_routes.lib.imaging import encode_png, sha256_hex
from media_routes.model_cards import CARDS
from media_routes.routing.execute import HostedCalls
from media_routes.routing.router import Candidate
from media_routes.spec import Campaign


@dataclass
class HostedStage:
    """One stage running on one hosted candidate."""

    cand: Candidate
    calls: HostedCalls
    hub: Any  # ProviderHub
    campaign: Campaign
    seed: int
    prompt_style: str = ""

    def image_call(
        self, op: str, params: dict[str, Any], images: dict[str, bytes], fn: Any, units: Units | None = None
    ) -> np.ndarray:
        """An accounted call whose result is an image file; returns it as RGB uint8."""
        data = self.calls.call(
            self.cand,
            op=op,
            params=params,
            inputs={k: sha256_hex(v) for k, v in images.items()},
            seed=self.seed if _takes_seed(self.cand) else None,
            units=units or self.cand.units,
            fn=fn,
        )
        return decode_image(data)

    def styled(self, prompt: str) -> str:
        return f"{prompt} Style: {self.prompt_style}." if self.prompt_style else prompt


def _takes_seed(cand: Candidate) -> bool:
    return CARDS[cand.route].seed


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()


def png(image: np.ndarray) -> bytes:
    return encode_png(image)


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to exactly ``size`` (w, h): area filter when shrinking, Lanczos when growing."""
    h, w = image.shape[:2]
    if (w, h) == size:
        return image
    shrink = size[0] <= w and size[1] <= h
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def palette_words(campaign: Campaign) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {code}" for name, code in campaign.spec.palette.items())
