"""Bad input: each case is rejected with an error naming the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from media_routes.spec import SpecError, load_all, load_campaign
from media_routes.testing.campaigns import EXAMPLES, write_campaign


def test_example_campaigns_are_valid() -> None:
    good, bad = load_all(EXAMPLES)
    assert not bad, [str(b) for b in bad]
    assert set(good) == {"noir-sneaker", "atrium-residences"}


def _edit(spec_path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(spec_path.read_text())
    mutate(data)
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))


def _problems(spec_path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(SpecError) as info:
        load_campaign(spec_path)
    return [(p.file, p.field, p.reason) for p in info.value.problems]


def _assert_problem(spec_path: Path, field: str, *words: str) -> None:
    problems = _problems(spec_path)
    assert all(file == str(spec_path) for file, _, _ in problems)
    hits = [reason for _, f, reason in problems if f == field]
    assert hits, f"no problem reported for {field}: {problems}"
    assert any(all(w.lower() in r.lower() for w in words) for r in hits), hits


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return write_campaign(tmp_path, "noir-sneaker")


def test_unknown_field(spec: Path) -> None:
    _edit(spec, lambda d: d["scene"].__setitem__("backgorund", {"colors": ["deep_blue"]}))
    _assert_problem(spec, "scene.backgorund", "unknown field")


def test_mistyped_field_value(spec: Path) -> None:
    _edit(spec, lambda d: d["motion"].__setitem__("fps", "fast"))
    _assert_problem(spec, "motion.fps", "integer")


def test_bad_hex_code(spec: Path) -> None:
    _edit(spec, lambda d: d["palette"].__setitem__("deep_blue", "#0B1F4"))
    _assert_problem(spec, "palette", "deep_blue", "hex")


def test_unknown_palette_reference(spec: Path) -> None:
    _edit(spec, lambda d: d["scene"]["headline"].__setitem__("color", "neon_pink"))
    problems = _problems(spec)
    assert any("scene.headline.color" in reason and "neon_pink" in reason for _, _, reason in problems), problems


def test_unknown_format(spec: Path) -> None:
    _edit(spec, lambda d: d.__setitem__("formats", ["1x1", "3x2"]))
    _assert_problem(spec, "formats", "unknown format", "3x2")


def test_unknown_route_names_the_known_ones(spec: Path) -> None:
    _edit(spec, lambda d: d.__setitem__("route", {"motion": "veo"}))
    _assert_problem(spec, "route.motion", "unknown route 'veo'", "kling/kling-v2-5-turbo")


def test_mask_rect_outside_image(spec: Path) -> None:
    _edit(spec, lambda d: d["fixes"][0]["mask"].__setitem__("rect", [700, 900, 300, 300]))
    _assert_problem(spec, "fixes.0.mask.rect", "outside", "819x1024")


def test_mask_polygon_outside_image(spec: Path) -> None:
    _edit(spec, lambda d: d["fixes"][1]["mask"].__setitem__("polygon", [[10, 10], [2000, 10], [10, 50]]))
    _assert_problem(spec, "fixes.1.mask.polygon", "outside")


def test_mask_png_wrong_size(tmp_path: Path) -> None:
    spec = write_campaign(tmp_path, "atrium-residences")
    Image.new("L", (100, 100), 255).save(spec.parent / "assets" / "pole_mask.png")
    _assert_problem(spec, "fixes.0.mask.png", "100x100", "1024x576")


def test_missing_asset_file(spec: Path) -> None:
    (spec.parent / "assets" / "sneaker.png").unlink()
    _assert_problem(spec, "scene.layers.2.source", "sneaker.png", "not found")


def test_path_escaping_the_campaign_folder(spec: Path) -> None:
    _edit(spec, lambda d: d["fixes"][0].__setitem__("patch", "../../etc/passwd"))
    _assert_problem(spec, "fixes.0.patch", "escapes the campaign folder")


def test_absolute_path_rejected(spec: Path) -> None:
    _edit(spec, lambda d: d["scene"]["layers"][2].__setitem__("source", "/etc/hosts"))
    _assert_problem(spec, "scene.layers.2.source", "absolute")


def test_decompression_bomb(spec: Path) -> None:
    # a tiny PNG file that declares 10000 x 10000 pixels (100 MP) once decoded
    bomb = spec.parent / "assets" / "sneaker.png"
    Image.fromarray(np.zeros((10_000, 10_000), dtype=np.uint8)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 1_000_000
    _assert_problem(spec, "scene.layers.2.source", "decompression bomb")


def test_not_an_image(spec: Path) -> None:
    (spec.parent / "assets" / "logo.png").write_bytes(b"definitely not a png")
    _assert_problem(spec, "fixes.0.patch", "not a readable image")


def test_id_must_match_folder(spec: Path) -> None:
    _edit(spec, lambda d: d.__setitem__("id", "other-name"))
    _assert_problem(spec, "id", "folder name")


def test_invalid_yaml(spec: Path) -> None:
    spec.write_text("id: [unclosed\n")
    _assert_problem(spec, "(yaml)", "not valid yaml")


def test_all_problems_reported_at_once(spec: Path) -> None:
    def mutate(d: dict) -> None:  # type: ignore[type-arg]
        d["motion"]["fps"] = 0
        d["upscale"]["target"] = "8K"

    _edit(spec, mutate)
    fields = {f for _, f, _ in _problems(spec)}
    assert {"motion.fps", "upscale.target"} <= fields


def test_one_bad_campaign_does_not_break_the_others(tmp_path: Path) -> None:
    write_campaign(tmp_path, "noir-sneaker")
    bad = write_campaign(tmp_path, "atrium-residences")
    _edit(bad, lambda d: d.__setitem__("formats", ["2x1"]))
    good, errors = load_all(tmp_path)
    assert list(good) == ["noir-sneaker"]
    assert len(errors) == 1 and "formats" in str(errors[0]) and str(bad) in str(errors[0])
