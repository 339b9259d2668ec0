"""The image logic around each stage's engine, tested without Dagster (issue #12): the stage declarations, hand-off
drift, the bridge pass, the brand lock, video pre-compensation and the keep-the-best-encode loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media_routes import stages
from media_routes.engine.encode_attempts import Encode, best_encode
from media_routes.quality import brand
from media_routes.quality.handoff import bridge_if_drifted, measure_handoff
from media_routes.spec import Quality


def _scene(seed: int = 0, size: tuple[int, int] = (192, 256)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 120.0)], axis=-1)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# --- stage declarations ---------------------------------------------------------------------------


def test_stages_are_declared_in_order_with_their_partitioning() -> None:
    assert stages.STAGES == (
        "base_composition",
        "lighting_iteration",
        "inpaint_fix",
        "k_upscale",
        "aspect_outpaint",
        "motion",
    )
    assert stages.CAMPAIGN_STAGES == stages.STAGES[:4] and stages.FORMAT_STAGES == stages.STAGES[4:]
    assert [s.number for s in stages.DECLARED] == [1, 2, 3, 4, 5, 6]
    assert stages.downstream_of("inpaint_fix") == ["inpaint_fix", "k_upscale", "aspect_outpaint", "motion"]
    assert stages.upstream_of("base_composition") is None and stages.upstream_of("motion") == "aspect_outpaint"
    assert stages.partition_key("k_upscale", "shoe") == "shoe"
    assert stages.partition_key("motion", "shoe", "9x16") == "shoe|9x16"
    assert stages.split_campaign_format("shoe|9x16") == ("shoe", "9x16")
    with pytest.raises(ValueError, match="campaign x format"):
        stages.partition_key("motion", "shoe")
    with pytest.raises(ValueError, match="unknown stage 'upscale'"):
        stages.get_stage("upscale")


def test_the_multi_partition_key_string_is_the_one_dagster_makes() -> None:
    from media_routes.defs.partitions import multi_partition_key

    assert str(multi_partition_key("shoe", "9x16")) == stages.campaign_format_key("shoe", "9x16")


# --- hand-off drift --------------------------------------------------------------------------------


def test_an_unchanged_handoff_has_no_problems() -> None:
    img = _scene()
    result = measure_handoff(img, img.copy(), Quality())
    assert result.problems == []
    assert result.summary["vs_input"]["grid_delta_e_max"] == pytest.approx(0.0, abs=1e-6)
    assert result.heatmap.ndim == 3 and result.heatmap.dtype == np.uint8


def test_a_colour_shift_is_a_problem_unless_grading_is_the_stage_purpose() -> None:
    img = _scene()
    shifted = img.copy()
    shifted[..., 2] = np.clip(shifted[..., 2].astype(int) + 60, 0, 255).astype(np.uint8)
    q = Quality()
    drifted = measure_handoff(img, shifted, q)
    assert any("grid CIEDE2000" in p for p in drifted.problems)
    graded = measure_handoff(img, shifted, q, grade=True)
    assert not any("grid CIEDE2000" in p for p in graded.problems)
    assert graded.summary["vs_input"]["grid_delta_e_max"] == drifted.summary["vs_input"]["grid_delta_e_max"]


def test_handoff_against_the_base_is_measured_when_given() -> None:
    img = _scene()
    result = measure_handoff(img, img, Quality(), base=_scene(seed=1))
    assert set(result.summary) == {"vs_input", "vs_base"}


# --- bridge pass -----------------------------------------------------------------------------------


def test_bridge_only_in_the_stages_the_spec_lists() -> None:
    img = _scene()
    out = bridge_if_drifted("lighting_iteration", img, img, Quality())
    assert out.info == {"enabled": False} and out.image is img and out.message is None


def test_bridge_pulls_a_drifted_output_back_and_says_so() -> None:
    ref = _scene()
    drifted = ref.copy()
    drifted[..., 0] = np.clip(drifted[..., 0].astype(int) + 70, 0, 255).astype(np.uint8)
    q = Quality()
    out = bridge_if_drifted("k_upscale", drifted, ref, q)
    assert out.applied and out.message and "bridge pass" in out.message
    assert out.info["after"]["grid_delta_e_max"] < out.info["before"]["grid_delta_e_max"]
    clean = bridge_if_drifted("k_upscale", ref.copy(), ref, q)
    assert not clean.applied and clean.message is None


def test_bridge_leaves_a_black_output_for_its_gate() -> None:
    ref = _scene()
    black = np.zeros_like(ref)
    out = bridge_if_drifted("k_upscale", black, ref, Quality())
    assert not out.applied and out.info["skipped"] == "output failed the blank gate"
    assert np.array_equal(out.image, black)


# --- brand lock ------------------------------------------------------------------------------------


def _branded() -> tuple[np.ndarray, np.ndarray, brand.Palette]:
    palette = brand.Palette.from_dict({"yellow": "#FDC805"})
    img = _scene()
    labels = np.zeros(img.shape[:2], np.uint8)
    labels[40:120, 60:200] = 1
    img[40:120, 60:200] = (230, 180, 30)  # off-brand yellow
    return img, labels, palette


def test_brand_lock_restores_the_region_mean() -> None:
    img, labels, palette = _branded()
    locked = brand.lock(img, labels, palette)
    assert locked.problems == []
    assert brand.worst(locked.before) > 3.0
    assert brand.worst(locked.after) < 0.5
    assert brand.worst(brand.measure(locked.image, labels, palette)) == brand.worst(locked.after)
    outside = labels == 0
    outside[35:125, 55:205] = False  # the one-pixel feather around the region may move
    assert np.array_equal(locked.image[outside], img[outside])


def test_brand_lock_leaves_a_black_output_alone() -> None:
    _, labels, palette = _branded()
    black = np.zeros((*labels.shape, 3), np.uint8)
    locked = brand.lock(black, labels, palette)
    assert locked.problems and locked.image is black and locked.before == locked.after


def test_brand_lock_without_a_label_map_only_gates() -> None:
    img, _, palette = _branded()
    locked = brand.lock(img, None, palette)
    assert locked.image is img and locked.before == {} and locked.after == {} and locked.problems == []


def test_precompensation_moves_each_frames_targets_by_what_the_decoder_showed() -> None:
    palette = brand.Palette.from_dict({"yellow": "#FDC805", "slate": "#2F3E46"})
    target = palette.lab()
    shown = {"yellow": {"lab_mean": list(target[0] + np.array([1.0, -2.0, 0.5]))}}  # slate absent in this frame
    first = brand.precompensated([palette, palette], [shown, {}], palette)
    assert first[0].offsets is not None and np.allclose(first[0].offsets[0], (-1.0, 2.0, -0.5))
    assert np.allclose(first[0].offsets[1], 0.0) and np.allclose(first[1].offsets, 0.0)
    again = brand.precompensated(first, [shown, {}], palette)  # offsets accumulate over encodes
    assert np.allclose(again[0].offsets[0], (-2.0, 4.0, -1.0))


# --- keep the best encode --------------------------------------------------------------------------


def _fake_encoder(tmp_path: Path, figures: list[float]):  # type: ignore[no-untyped-def]
    seen: list[int] = []

    def encode(targets: int, attempt: int) -> Encode[int]:
        path = tmp_path / f"{attempt}.mp4"
        path.write_bytes(b"x")
        seen.append(targets)
        return Encode(path, figures[attempt], targets)

    return encode, seen


def test_best_encode_stops_when_good_enough(tmp_path: Path) -> None:
    encode, seen = _fake_encoder(tmp_path, [0.5, 0.1, 0.1])
    best, worst = best_encode(encode, 0, lambda t, b: t + 1, good_enough=1.0)
    assert worst == [0.5] and seen == [0] and best.path.exists()


def test_best_encode_keeps_the_best_and_deletes_the_others(tmp_path: Path) -> None:
    encode, seen = _fake_encoder(tmp_path, [2.0, 1.5, 1.8])
    best, worst = best_encode(encode, 0, lambda t, b: t + 1, good_enough=1.0)
    assert worst == [2.0, 1.5, 1.8] and seen == [0, 1, 2]
    assert best.path.name == "1.mp4" and best.path.exists()
    assert not (tmp_path / "0.mp4").exists() and not (tmp_path / "2.mp4").exists()


def test_best_encode_disabled_encodes_once(tmp_path: Path) -> None:
    encode, seen = _fake_encoder(tmp_path, [5.0, 1.0, 1.0])
    best, worst = best_encode(encode, 0, lambda t, b: t + 1, good_enough=1.0, enabled=False)
    assert worst == [5.0] and seen == [0]


# --- typed metadata ----------------------------------------------------------------------------------


def test_every_key_a_stage_writes_for_readers_is_read_back_through_stage_metadata(tmp_path: Path) -> None:
    from media_routes.defs.resources import LocalMediaStore
    from media_routes.defs.stages.route_runner import RouteDecision
    from media_routes.defs.stages.stage_io import stage_output
    from media_routes.lib.imaging import encode_png, sha256_hex
    from media_routes.lib.media import MediaRef
    from media_routes.stage_metadata import StageMetadata

    img = _scene()
    store = LocalMediaStore(root=str(tmp_path / "media"))
    data = encode_png(img)
    uri = store.put_bytes(data, prefix="k_upscale/shoe", ext="png")
    ref = MediaRef(uri=uri, sha256=sha256_hex(data), kind="image", width=256, height=192, layers={"base": uri})
    route = RouteDecision("k_upscale", "local", "local-engine/k_upscale@1", "local from profile local", {})
    out = stage_output(
        ref=ref,
        store=store,
        route=route,
        seed=7,
        seed_source="spec",
        inputs={"inpaint_fix": "ab" * 32},
        preview=img,
        metrics={"k_level": "2K"},
        started=0.0,
        extra={StageMetadata.key("spec_slice"): "0123456789abcdef"},
    )
    meta = StageMetadata.read(out.metadata)
    assert meta.output_hash == ref.sha256 and meta.uri == uri and meta.layers == {"base": uri}
    assert meta.provider == "local" and meta.model == route.model and meta.seed == 7 and meta.seed_source == "spec"
    assert meta.input_hashes == {"inpaint_fix": "ab" * 32} and meta.metrics == {"k_level": "2K"}
    assert (meta.width, meta.height) == (256, 192) and meta.spec_slice == "0123456789abcdef"
    assert meta.media_path and Path(meta.media_path).is_file()
    assert meta.route and meta.route["provider"] == "local"
    assert meta.credits == 0.0 and meta.cache_hits == 0 and meta.credits_estimate == 0.0
    assert meta.compute_s is not None and out.data_version is not None and out.data_version.value == ref.sha256
    assert StageMetadata.key("uri") == "dagster/uri"
    assert StageMetadata.read({}) == StageMetadata()
