"""Pure local-engine functions of stages 1-3: base composition, lighting iteration, inpaint fixes."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from media_routes.engine.base_composition import compose
from media_routes.engine.inpaint_fix import apply_fixes, feather, rasterize_mask
from media_routes.engine.lighting_iteration import iterate, measure, within
from media_routes.lib.imaging import hex_to_rgb, load_user_image
from media_routes.spec import Campaign, LightingTargets, MaskSpec, load_campaign
from media_routes.testing.campaigns import EXAMPLES


@cache
def example(cid: str) -> Campaign:
    return load_campaign(EXAMPLES / cid / "campaign.yaml")


@cache
def base(cid: str, seed: int | None = None):  # type: ignore[no-untyped-def]
    c = example(cid)
    return compose(c, seed=c.spec.seed if seed is None else seed)


# ---------------------------------------------------------------- base_composition


@pytest.mark.parametrize(("cid", "shape"), [("noir-sneaker", (1024, 819, 3)), ("atrium-residences", (576, 1024, 3))])
def test_base_is_1k_at_the_scene_aspect(cid: str, shape: tuple[int, int, int]) -> None:
    r = base(cid)
    assert r.image.shape == shape and r.image.dtype == np.uint8
    assert r.subject_mask.shape == shape[:2]


def test_base_is_deterministic_for_spec_and_seed() -> None:
    c = example("noir-sneaker")
    a, b = compose(c, seed=5), compose(c, seed=5)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, compose(c, seed=6).image)  # the seeded texture changes


def test_headline_is_set_in_the_exact_brand_colour() -> None:
    c = example("noir-sneaker")
    r = base("noir-sneaker")
    x0, y0, x1, y1 = r.metrics["headline_bbox"]  # type: ignore[misc]
    box = r.image[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 3)
    yellow = np.array(hex_to_rgb(c.spec.palette["electric_yellow"]))
    exact = np.all(box == yellow, axis=1).mean()
    assert exact > 0.15  # glyph interiors are exactly #F5D90A (the rest is background and anti-aliasing)
    assert r.metrics["headline_text"] == "RUN THE NIGHT"


def test_subject_mask_covers_the_cutout_and_the_headline() -> None:
    r = base("noir-sneaker")
    layer = next(la for la in r.metrics["layers"] if la["name"] == "sneaker")  # type: ignore[union-attr]
    x, y, w, h = layer["box"]
    assert r.subject_mask[y : y + h, x : x + w].mean() > 60  # the sneaker cutout
    x0, y0, x1, y1 = r.metrics["headline_bbox"]  # type: ignore[misc]
    assert r.subject_mask[y0 : y1 + 1, x0 : x1 + 1].max() == 255
    assert r.subject_mask[5:60, 5:60].max() == 0  # background corner is not foreground


def test_shadow_falls_away_from_the_key_light() -> None:
    # key light from the upper left (135 deg): the shadow darkens the background to the lower right
    c = example("noir-sneaker")
    r = base("noir-sneaker")
    x, y, w, h = next(la for la in r.metrics["layers"] if la["name"] == "sneaker")["box"]  # type: ignore[index]
    lum = r.image.astype(np.float32).mean(axis=2)
    right_below = lum[y + h + 2 : y + h + 12, x + w // 2 : x + w].mean()
    left_above = lum[y - 12 : y - 2, x : x + w // 2].mean()
    assert c.spec.scene.key_light.direction_deg == 135
    assert right_below < left_above


# ---------------------------------------------------------------- lighting_iteration


@pytest.mark.parametrize("cid", ["noir-sneaker", "atrium-residences"])
def test_lighting_locks_the_examples_within_tolerance(cid: str) -> None:
    c = example(cid)
    start = measure(base(cid).image)
    r = iterate(base(cid).image, c.spec.lighting)
    assert r.locked and r.final is not None and within(r.final, c.spec.lighting)
    assert 1 <= len(r.iterations) <= c.spec.lighting.max_iterations
    t = c.spec.lighting
    assert abs(r.final.exposure - t.exposure) < abs(start.exposure - t.exposure)
    for row in r.iterations:
        assert {"iteration", "before_exposure", "after_exposure", "after_white_balance_k", "after_contrast"} <= set(row)


def test_at_least_one_iteration_runs_even_when_already_on_target() -> None:
    img = base("atrium-residences").image
    m = measure(img)
    targets = LightingTargets(
        exposure=m.exposure, white_balance_k=min(10000, max(2500, m.white_balance_k)), contrast=m.contrast
    )
    r = iterate(img, targets)
    assert len(r.iterations) == 1 and r.locked


def test_lighting_stops_at_max_iterations_when_targets_are_unreachable() -> None:
    img = base("noir-sneaker").image
    targets = LightingTargets(
        exposure=90, white_balance_k=2500, contrast=90, max_iterations=2, tolerance={"exposure": 0.01}
    )
    r = iterate(img, targets)
    assert len(r.iterations) == 2 and not r.locked


def test_white_balance_correction_moves_the_estimate_toward_the_target() -> None:
    img = base("atrium-residences").image
    before = measure(img).white_balance_k
    r = iterate(
        img, LightingTargets(exposure=measure(img).exposure, white_balance_k=5000, contrast=measure(img).contrast)
    )
    assert r.final is not None and abs(r.final.white_balance_k - 5000) < abs(before - 5000)


# ---------------------------------------------------------------- inpaint_fix


@pytest.mark.parametrize("cid", ["noir-sneaker", "atrium-residences"])
def test_pixels_outside_the_feathered_masks_are_byte_identical(cid: str) -> None:
    c = example(cid)
    src = base(cid).image
    r = apply_fixes(src, c, seed=3)
    assert r.changed_mask is not None
    outside = r.changed_mask == 0
    assert np.array_equal(r.image[outside], src[outside])
    assert not np.array_equal(r.image, src)  # the fixes did change something inside


def test_fix_layers_reproduce_the_output_so_a_fix_can_be_undone() -> None:
    c = example("noir-sneaker")
    src = base("noir-sneaker").image
    r = apply_fixes(src, c, seed=3)
    current = src.copy()
    for layer in r.layers:
        a = layer.alpha.astype(np.float32)[..., None] / 255.0
        blend = np.clip(np.rint(current * (1 - a) + layer.rgba[..., :3].astype(np.float32) * a), 0, 255)
        current = np.where(layer.alpha[..., None] > 0, blend, current).astype(np.uint8)
        assert np.array_equal(layer.rgba[..., 3], layer.alpha)
    assert np.array_equal(current, r.image)


def test_replace_lays_the_patch_in_its_exact_colours() -> None:
    c = example("noir-sneaker")
    src = base("noir-sneaker").image
    r = apply_fixes(src, c, seed=3)
    fix = c.spec.fixes[0]
    assert fix.action == "replace" and fix.mask.rect is not None
    x, y, w, h = fix.mask.rect
    yellow = np.array(hex_to_rgb(c.spec.palette["electric_yellow"]))
    patch = load_user_image(c.resolve(fix.patch), mode="RGBA")  # type: ignore[arg-type]
    opaque_patch_px = int((patch[..., 3] == 255).sum())
    box = r.image[y : y + h, x : x + w].reshape(-1, 3)
    exact = int(np.all(np.abs(box.astype(int) - yellow) <= 2, axis=1).sum())
    assert exact > 0.5 * opaque_patch_px * (0.93**2)  # patch is scaled ~0.94 into the box


def test_remove_fills_with_the_surroundings() -> None:
    c = example("atrium-residences")
    src = base("atrium-residences").image
    r = apply_fixes(src, c, seed=3)
    hard = rasterize_mask(c.spec.fixes[0].mask, (1024, 576), c) > 0
    dark_before = (src[hard].mean(axis=1) < 90).sum()
    dark_after = (r.image[hard].mean(axis=1) < 90).sum()
    assert dark_before > 3000  # the stray pole and lamp are dark
    assert dark_after == 0  # gone
    ring = (feather(hard.astype(np.uint8) * 255, 12) > 0) & ~hard
    assert abs(r.image[hard].astype(np.float32).mean() - src[ring].astype(np.float32).mean()) < 20


def test_remove_grain_depends_on_the_seed() -> None:
    c = example("atrium-residences")
    src = base("atrium-residences").image
    assert not np.array_equal(apply_fixes(src, c, seed=1).image, apply_fixes(src, c, seed=2).image)
    assert np.array_equal(apply_fixes(src, c, seed=1).image, apply_fixes(src, c, seed=1).image)


def test_mask_rasterization_and_feather() -> None:
    rect = rasterize_mask(MaskSpec(rect=(10, 20, 30, 40)), (100, 100))
    assert rect.sum() // 255 == 30 * 40 and rect[20, 10] == 255 and rect[19, 10] == 0
    poly = rasterize_mask(MaskSpec(polygon=[(10, 10), (50, 10), (10, 50)]), (100, 100))
    assert 700 < poly.sum() // 255 < 900  # a right triangle of legs 40: area 800
    soft = feather(rect, 4)
    assert np.array_equal(soft[rect > 0], rect[rect > 0])  # fully opaque inside
    assert (soft > 0).sum() > (rect > 0).sum()  # grows outward
    assert soft[20 + 20, 10 - 6] == 0  # but no further than the radius
