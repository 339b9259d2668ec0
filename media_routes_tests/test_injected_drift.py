"""Injected drift: a simulated secondary model misbehaves at one stage; the pipeline must catch it there.

Each test replaces one stage's engine call with a wrapper that damages its output the way hosted
models do (crushed blue shadows, a hue shift, a black or blank result, a visible seam), runs the
graph for one small campaign, and checks that the damage is detected, attributed to that stage and,
where a correction exists, corrected back within tolerance.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from media_routes.drift_report import chain_rows, corrected_drift, first_exceeded
from media_routes.lineage import trace
from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns
from media_routes_tests.shared_render import GROUP
from media_routes_tests.test_quality_drift import crush_shadows, hue_shift

pytestmark = pytest.mark.integration


def _run(instance, resources, campaign: str, fmt: str) -> list[bool]:  # type: ignore[no-untyped-def]
    register_campaigns(instance, [campaign])
    return [
        materialize_stages(instance, resources, r.stages, r.partition, raise_on_error=False).success
        for r in plan_runs(campaign, [fmt])
    ]


def _chain(instance, campaign: str, fmt: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return chain_rows(trace(instance, campaign, [fmt]))


def _row(chain: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    return next(c for c in chain if c["stage"] == stage)


def _set_quality(campaigns_dir: Path, campaign: str, **quality: object) -> None:
    spec = campaigns_dir / campaign / "campaign.yaml"
    data = yaml.safe_load(spec.read_text())
    data["quality"] = {**data.get("quality", {}), **quality}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


@GROUP
def test_clean_run_passes_every_check_and_holds_brand_colours(rendered) -> None:  # type: ignore[no-untyped-def]
    # the session's clean render of 'shoe' (shared_render.py): both runs of shoe x 9x16 succeeded
    assert [rendered.runs["shoe"], rendered.runs["shoe|9x16"]] == [True, True]
    chain = _chain(rendered.instance, "shoe", "9x16")
    assert first_exceeded(chain) is None and corrected_drift(chain) == []
    for row in chain:
        assert row["brand_delta_e_max"] is not None and row["brand_delta_e_max"] <= 1.0, row
    assert _row(chain, "motion")["frame_ssim_min"] > 0.5


def test_crushed_blue_shadows_at_upscale_are_caught_there_and_bridged(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.k_upscale")

    real = stage.upscale

    def secondary_model(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        result.image = crush_shadows(result.image)
        return result

    monkeypatch.setattr(stage, "upscale", secondary_model)
    assert _run(instance, resources, "shoe", "9x16") == [True, True]
    chain = _chain(instance, "shoe", "9x16")
    assert [c["stage"] for c in corrected_drift(chain)] == ["k_upscale"]  # attributed to the right stage
    bridge = _row(chain, "k_upscale")["bridge"]
    assert bridge["before"]["shadow_chroma_retention"] < 0.6  # detected: blue shadows went flat
    assert bridge["after"]["shadow_chroma_retention"] >= 0.6  # corrected back within tolerance
    assert _row(chain, "k_upscale")["brand_delta_e_max"] <= 1.0
    # every check passes but one WARN: since the sneaker is held at its source colours (protect: true), its brown
    # leather matches the classical YCrCb skin rule, and the bridge pass raises that "skin"'s high-frequency energy
    # past the guard's ratio (1.88x against 1.3). A false positive of the skin rule on a product, open on #16
    failed = {(c["stage"], name) for c in chain for name in c["failed_checks"]}
    assert failed == {("k_upscale", "not_oversharpened")}, failed


def test_hue_shift_at_outpaint_is_caught_there_and_corrected(instance, resources, campaigns_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.aspect_outpaint")

    _set_quality(campaigns_dir, "shoe", drift_delta_e_warn=2.0)
    real = stage.outpaint

    def secondary_model(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        result.delivery = hue_shift(result.delivery, 8)
        return result

    monkeypatch.setattr(stage, "outpaint", secondary_model)
    assert _run(instance, resources, "shoe", "9x16") == [True, True]
    chain = _chain(instance, "shoe", "9x16")
    assert [c["stage"] for c in corrected_drift(chain)] == ["aspect_outpaint"]
    bridge = _row(chain, "aspect_outpaint")["bridge"]
    assert bridge["before"]["grid_delta_e_max"] > 2.0  # detected
    assert bridge["after"]["grid_delta_e_max"] < bridge["before"]["grid_delta_e_max"] / 2
    assert _row(chain, "aspect_outpaint")["brand_delta_e_max"] <= 1.0  # brand colour restored
    assert _row(chain, "motion")["brand_delta_e_max"] <= 1.0


def test_damage_outside_the_inpaint_mask_blocks_downstream(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.inpaint_fix")

    real = stage.apply_fixes

    def secondary_model(image: np.ndarray, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(image, *args, **kwargs)
        result.image = crush_shadows(result.image)  # touches pixels it was not allowed to
        return result

    monkeypatch.setattr(stage, "apply_fixes", secondary_model)
    assert _run(instance, resources, "shoe", "9x16")[0] is False  # the campaign run fails at inpaint_fix
    chain = _chain(instance, "shoe", "9x16")
    first = first_exceeded(chain)
    assert first is not None and first["stage"] == "inpaint_fix"
    assert "outside_mask_unchanged" in first["failed_checks"]
    assert "k_upscale" not in {c["stage"] for c in chain}  # blocked: never made from the bad output


def test_black_image_at_base_is_not_passed_on(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.base_composition")

    real = stage.compose

    def refused(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        result.image = np.zeros_like(result.image)  # what a refused generation often returns
        return result

    monkeypatch.setattr(stage, "compose", refused)
    register_campaigns(instance, ["shoe"])
    run = plan_runs("shoe", ["9x16"])[0]
    assert not materialize_stages(instance, resources, run.stages, run.partition, raise_on_error=False).success
    chain = _chain(instance, "shoe", "9x16")
    assert [c["stage"] for c in chain] == ["base_composition"]
    assert "black image" in chain[0]["failed_checks"]["output_not_blank"]


def test_black_frames_in_the_video_fail_motion(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.motion")

    real = stage.render_frames

    def glitchy(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        for i, frame in enumerate(real(*args, **kwargs)):
            yield np.zeros_like(frame) if i == 5 else frame

    monkeypatch.setattr(stage, "render_frames", glitchy)
    assert _run(instance, resources, "shoe", "9x16") == [True, False]
    chain = _chain(instance, "shoe", "9x16")
    first = first_exceeded(chain)
    assert first is not None and first["stage"] == "motion"
    assert "black frame" in first["failed_checks"]["output_not_blank"]


def test_visible_outpaint_seam_warns(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.aspect_outpaint")
    engine = importlib.import_module("media_routes.engine.aspect_outpaint")
    real = stage.outpaint

    def seamy(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        x, y, w, h = result.placement
        canvas = result.canvas.astype(np.int16) + 40  # the fill comes back 40 levels too bright
        canvas[y : y + h, x : x + w] = result.canvas[y : y + h, x : x + w]
        result.canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        result.delivery = engine._resize(result.canvas, result.delivery.shape[1::-1])
        # the engine's own seam measures, on the damaged canvas
        result.metrics["seam_delta_e"] = engine._seam_delta_e(result.canvas, x, y, w, h)
        result.metrics["seam_gradient_ratio"] = engine.seam_gradient_ratio(result.canvas, x, y, w, h)
        return result

    monkeypatch.setattr(stage, "outpaint", seamy)
    assert _run(instance, resources, "shoe", "9x16") == [True, True]  # a WARN does not block
    chain = _chain(instance, "shoe", "9x16")
    first = first_exceeded(chain)
    assert first is not None and first["stage"] == "aspect_outpaint"
    assert "outpaint_seam" in first["failed_checks"]
    assert _row(chain, "aspect_outpaint")["seam_delta_e"] > 3.0


@pytest.fixture(autouse=True)
def _quiet_dagster_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="dagster")


def test_a_black_upscale_is_not_repainted_by_the_brand_lock(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("media_routes.defs.stages.k_upscale")
    real = stage.upscale

    def refused(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        result.image = np.zeros_like(result.image)
        return result

    monkeypatch.setattr(stage, "upscale", refused)
    assert _run(instance, resources, "shoe", "9x16")[0] is False
    first = first_exceeded(_chain(instance, "shoe", "9x16"))
    assert first is not None and first["stage"] == "k_upscale"
    assert "black image" in first["failed_checks"]["output_not_blank"]


def test_an_oversharpening_upscaler_is_caught_at_upscale(instance, resources, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import cv2

    stage = importlib.import_module("media_routes.defs.stages.k_upscale")
    real = stage.upscale

    def crunchy(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        blur = cv2.GaussianBlur(result.image, (0, 0), 2.0)
        result.image = cv2.addWeighted(result.image, 2.0, blur, -1.0, 0)  # a strong unsharp mask
        return result

    monkeypatch.setattr(stage, "upscale", crunchy)
    # the WARN (skin and halos) does not block; the unsharp mask also rings the headline's strokes, which the
    # blocking brand check now measures on their interiors (p95 over 2.0), so the still stops at k_upscale
    assert _run(instance, resources, "tower", "16x9") == [False, False]
    first = first_exceeded(_chain(instance, "tower", "16x9"))
    assert first is not None and first["stage"] == "k_upscale"
    assert {"not_oversharpened", "brand_colours_locked"} <= set(first["failed_checks"])
    assert "p95" in first["failed_checks"]["brand_colours_locked"]
