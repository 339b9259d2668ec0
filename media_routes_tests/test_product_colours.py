"""Protected product colours (issue #16 item 4): the noir example's sneaker, held to its source asset's colours.

The injected case is the one measured on the demo before this: lighting turns the sneaker's warm yellow accent
chartreuse. Measured against its swatch reference the check fails; restored by the lock (as every correcting stage
does) it passes; left as it is (a stage that may not touch it) it keeps failing and names the swatch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from media_routes.defs.stages.checks import CHECK_PRODUCT, product_check
from media_routes.engine.base_composition import compose, protected_sources
from media_routes.lib.imaging import hex_to_rgb, srgb_to_lab
from media_routes.quality import brand, product
from media_routes.quality.delta_e import delta_e00
from media_routes.spec import Campaign, load_campaign

NOIR = Path(__file__).resolve().parent.parent / "campaigns" / "noir-sneaker" / "campaign.yaml"
STRIPE = (245, 217, 10)  # the accent stripe as assets/sneaker.png has it


@lru_cache(maxsize=1)
def _noir() -> tuple[Campaign, np.ndarray, brand.Palette]:
    campaign = load_campaign(NOIR)
    labels, swatches = product.swatches(protected_sources(campaign))
    return campaign, labels, swatches


def _stripe_index(swatches: brand.Palette) -> int:
    target = srgb_to_lab(np.array([[STRIPE]], np.uint8))[0, 0]
    distances = [float(delta_e00(lab, target)) for lab in swatches.lab()]
    return int(np.argmin(distances))


def test_the_example_protects_its_sneaker() -> None:
    campaign, _labels, _swatches = _noir()
    assert [layer.name for layer in campaign.spec.scene.layers if layer.protect] == ["sneaker"]


def test_swatches_are_the_source_colours_and_keep_the_accent_apart() -> None:
    _campaign, labels, swatches = _noir()
    assert 3 <= len(swatches.names) <= product.MAX_SWATCHES
    assert all(product.is_product(n) and n.startswith("product:sneaker:") for n in swatches.names)
    stripe = _stripe_index(swatches)
    ref = srgb_to_lab(np.array([[hex_to_rgb(swatches.hexes[stripe])]], np.uint8))[0, 0]
    assert float(delta_e00(ref, srgb_to_lab(np.array([[STRIPE]], np.uint8))[0, 0])) < 1.0  # not blended with brown
    assert (labels == stripe + 1).sum() > 2000  # the stripe is a region of its own on the canvas
    # deterministic: the same map and palette again
    again_labels, again = product.swatches(protected_sources(_noir()[0]))
    assert again == swatches and np.array_equal(again_labels, labels)


def test_a_lighting_shift_of_the_accent_fails_and_the_lock_restores_it() -> None:
    campaign, labels, swatches = _noir()
    base = compose(campaign, seed=campaign.spec.seed).image
    brand_palette = brand.Palette.from_dict(campaign.spec.palette)
    merged, palette = product.merge(np.zeros_like(labels), brand_palette, labels, swatches)
    limit = campaign.spec.quality.product_delta_e_max
    held = brand.lock(base, merged, palette)  # what the base stage does with the lit product
    assert product_check(product.split(held.after)[1], limit).passed
    # the injected drift: the accent goes chartreuse (less red), as lighting_iteration did before
    stripe_value = len(brand_palette.names) + _stripe_index(swatches) + 1
    shifted = held.image.copy()
    region = merged == stripe_value
    shifted[region, 0] = np.clip(shifted[region, 0].astype(int) - 64, 0, 255).astype(np.uint8)
    drifted = brand.measure(shifted, merged, palette)
    outcome = product_check(product.split(drifted)[1], limit)
    assert not outcome.passed and outcome.name == CHECK_PRODUCT
    assert palette.names[stripe_value - 1] in outcome.description  # it names the swatch that moved
    restored = brand.lock(shifted, merged, palette)
    assert product_check(product.split(restored.after)[1], limit).passed
    # the lock moved only the product: pixels beyond the map's one-pixel feather are untouched
    far = cv2.dilate((merged > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(restored.image[far], shifted[far])


def test_brand_colours_keep_their_regions_and_checks_apart_from_swatches() -> None:
    brand_labels = np.zeros((8, 8), np.uint8)
    brand_labels[:4] = 1
    swatch_labels = np.full((8, 8), 2, np.uint8)
    merged, palette = product.merge(
        brand_labels,
        brand.Palette(("slate",), ("#2F3E46",)),
        swatch_labels,
        brand.Palette(("product:shoe:1", "product:shoe:2"), ("#FFFFFF", "#000000")),
    )
    assert palette.names == ("slate", "product:shoe:1", "product:shoe:2")
    assert (merged[:4] == 1).all() and (merged[4:] == 3).all()  # a brand colour wins where both are
    report = {"slate": {"region_mean_delta_e": 0.2}, "product:shoe:2": {"region_mean_delta_e": 3.0}}
    brand_part, product_part = product.split(report)
    assert list(brand_part) == ["slate"] and list(product_part) == ["product:shoe:2"]
    assert not product_check(product_part, 2.0).passed
    assert product_check({}, 2.0).passed  # no protected layer: nothing to hold
    assert not product_check({}, 2.0, frames=240, worst=2.4).passed  # a clip: the worst frame decides
