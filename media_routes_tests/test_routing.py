"""The router: capabilities, intent, credentials, health and price decide; every rejection is explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_routes.cli import main
from media_routes.credits.ledger import PriceTable
from media_routes.routing.health import HealthBook
from media_routes.routing.profiles import ProfileError, load_profile_file
from media_routes.routing.router import RouterContext, plan_campaign, plan_stage, segments_for
from media_routes.spec import Campaign, SpecError, load_campaign
from media_routes.testing.campaigns import write_campaign


def _campaign(tmp_path: Path, **overrides: object) -> Campaign:
    return load_campaign(write_campaign(tmp_path, "noir-sneaker", "shoe", **overrides))


def _ctx(missing: set[str] = frozenset(), health: HealthBook | None = None) -> RouterContext:  # type: ignore[assignment]
    return RouterContext(
        prices=PriceTable.from_yaml(),
        missing_credentials=lambda card: [c for c in card.credentials if c in missing],
        health=(lambda card: health.status(card.id)) if health else (lambda card: None),
    )


def test_segments_cover_the_duration_with_the_fewest_seconds_then_calls() -> None:
    assert segments_for(10, (4, 6, 8), chain=True) == [6, 4]
    assert segments_for(8, (4, 6, 8), chain=True) == [8]
    assert segments_for(7, (5, 10), chain=True) == [10]  # one longer call, trimmed
    assert segments_for(10, (4, 6, 8), chain=False) is None
    assert segments_for(20, (5, 10), chain=False) is None
    assert segments_for(20, (5, 10), chain=True) == [10, 10]


def test_high_drama_plan_explains_choices_fallbacks_and_rejections(tmp_path: Path) -> None:
    c = _campaign(tmp_path, formats=["9x16", "4x5"], route={"profile": "high-drama"})
    plans = {(p.stage, p.format_key): p for p in plan_campaign(c, _ctx(missing={"KLING_ACCESS_KEY"}))}
    veo = plans[("motion", "9x16")]
    assert veo.chosen is not None and veo.chosen.route == "google/veo-3.1-generate-preview"
    assert "10 s = 6 s + 4 s chained" in veo.chosen.notes[0]
    assert veo.chosen.credits == pytest.approx(400.0)  # 10 s x $0.40 / $0.01 per credit
    four_five = plans[("motion", "4x5")]
    assert four_five.chosen is not None and four_five.chosen.route == "local"
    reasons = {r.route: r.rejected for r in four_five.rejected}
    assert "format 4x5 (4:5) is not offered (16:9, 9:16)" in reasons["google/veo-3.1-generate-preview"]
    assert "KLING_ACCESS_KEY not set" in reasons["kling/kling-v2-5-turbo"]
    text = "\n".join(four_five.explain())
    assert "rejected google/veo-3.1-generate-preview: format 4x5" in text


def test_brand_safe_rejects_models_that_reinterpret(tmp_path: Path) -> None:
    c = _campaign(tmp_path, route={"profile": "brand-safe", "lighting_iteration": "google/gemini-3-pro-image-preview"})
    plan = plan_stage(c, "lighting_iteration", None, _ctx())
    assert plan.chosen is None and plan.source.startswith("override route.lighting_iteration")
    assert "intent brand-safe keeps the base layer" in plan.rejected[0].rejected[0]


def test_capabilities_text_size_and_instructions(tmp_path: Path) -> None:
    c = _campaign(tmp_path, route={"profile": "local", "base_composition": "google/gemini-2.5-flash-image"})
    plan = plan_stage(c, "base_composition", None, _ctx())  # the spec has a headline; flash renders no exact text
    assert plan.chosen is None and "cannot render exact headline text" in plan.rejected[0].rejected[0]
    c = _campaign(tmp_path / "b", upscale={"target": "4K"}, route={"k_upscale": "google/gemini-2.5-flash-image"})
    assert plan_stage(c, "k_upscale", None, _ctx()).rejected[0].rejected == ("does not run k_upscale",)
    c = _campaign(tmp_path / "c", fixes=[_instruct_fix()], route={"inpaint_fix": "fal/fal-ai/flux-pro/v1/fill"})
    assert plan_stage(c, "inpaint_fix", None, _ctx()).chosen is not None
    with pytest.raises(SpecError, match="action 'instruct' needs a hosted inpaint route"):
        _campaign(tmp_path / "d", fixes=[_instruct_fix()], route={"inpaint_fix": "local"})


def _instruct_fix() -> dict[str, object]:
    return {"name": "sky", "mask": {"rect": [0, 0, 100, 100]}, "action": "instruct", "instruction": "clear sky"}


def test_unhealthy_route_is_skipped_until_it_succeeds(tmp_path: Path) -> None:
    book = HealthBook(tmp_path / "h.sqlite", threshold=2)
    c = _campaign(tmp_path, route={"profile": "brand-safe"})
    for _ in range(2):
        book.record("fal/fal-ai/seedvr/upscale/image", ok=False, reason="ServerError: 503")
    plan = plan_stage(c, "k_upscale", None, _ctx(health=book))
    assert plan.chosen is not None and plan.chosen.route == "fal/fal-ai/esrgan"
    assert "unhealthy: 2 outages" in plan.rejected[0].rejected[0]
    book.record("fal/fal-ai/seedvr/upscale/image", ok=True)
    assert plan_stage(c, "k_upscale", None, _ctx(health=book)).chosen.route == "fal/fal-ai/seedvr/upscale/image"  # type: ignore[union-attr]


def test_prefer_cost_orders_admissible_routes_by_estimate(tmp_path: Path) -> None:
    c = _campaign(tmp_path, route={"profile": "soft-architectural"})
    plan = plan_stage(c, "k_upscale", None, _ctx())
    costs = [cand.credits for cand in plan.ranked]
    assert costs == sorted(costs) and plan.ranked[0].route == "local"  # free first under prefer: cost


def test_spec_and_profile_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="route.motion.*unknown route 'veo'"):
        _campaign(tmp_path, route={"motion": "veo"})
    bad = tmp_path / "bad-profile.yaml"
    bad.write_text("description: x\nintent: brand-safe\nstages: {motion: [fal/fal-ai/esrgan]}\n")
    with pytest.raises(ProfileError, match="motion: route 'fal/fal-ai/esrgan' cannot run this stage"):
        load_profile_file(bad)
    c = _campaign(tmp_path / "p", route={"profile": "no-such-profile"})
    with pytest.raises(ProfileError, match="route.profile 'no-such-profile' not found"):
        plan_stage(c, "motion", "1x1", _ctx())


def test_routes_command_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("GEMINI_API_KEY", "FAL_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_KEY", "fal-test-key")
    write_campaign(tmp_path, "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    assert main(["routes", "shoe", "--campaigns-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "k_upscale: fal/fal-ai/seedvr/upscale/image (profile brand-safe" in text
    assert "rejected google/gemini-3-pro-image-preview: GEMINI_API_KEY not set" in text
    assert "fal-test-key" not in text
