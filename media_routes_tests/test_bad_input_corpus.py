"""Bad input corpus (issue #15, spec and asset part): each case is refused as ``file: field: reason``,
quickly and in bounded memory, and a good campaign in the same folder still loads.

Time and memory are measured in the test process: CPU time of the process (wall time is several times
larger when the 2-core machine is busy, so it only has a loose bound against hangs) and the
``tracemalloc`` peak of allocations (numpy's buffers included).
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from media_routes.spec import MAX_ITEMS_SHOWN, SpecError, load_all, load_campaign
from media_routes.testing.campaigns import write_campaign

CPU_SECONDS = 2.0
WALL_SECONDS = 30.0
PEAK_BYTES = 300_000_000


def _mutate(spec: Path, mutate: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(spec.read_text())
    mutate(data)
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def _text(spec: Path, text: str | bytes) -> None:
    spec.write_bytes(text.encode() if isinstance(text, str) else text)


def _append(spec: Path, extra: str) -> None:
    spec.write_text(spec.read_text() + extra)


def _png_with_text_chunk(path: Path, megabytes: int) -> None:
    """A valid 8x8 PNG carrying a compressed zTXt chunk that inflates to ``megabytes`` MB."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00\xff" * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    text = b"comment\x00\x00" + zlib.compress(b"a" * (megabytes * 1_000_000), 9)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 6, 0, 0, 0))
    png += chunk(b"zTXt", text) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def _cutout(spec: Path) -> Path:
    data = yaml.safe_load(spec.read_text())
    layer = next(la for la in data["scene"]["layers"] if la["kind"] == "image")
    return spec.parent / layer["source"]


CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    # (name, how to break the spec, field, words of the reason)
    ("non-utf8 byte", lambda s: _text(s, s.read_bytes().replace(b"brief:", b"brief: \xff", 1)), "(file)", "not UTF-8"),
    ("utf-16 file", lambda s: _text(s, s.read_text().encode("utf-16")), "(file)", "not UTF-8"),
    ("yaml nested 500 deep", lambda s: _append(s, "x: " + "[" * 500 + "]" * 500 + "\n"), "(yaml)", "nested more"),
    (
        "yaml nested 40 deep (maps)",
        lambda s: _append(s, "x:\n" + "".join("  " * i + "k:\n" for i in range(1, 40))),
        "(yaml)",
        "nested more",
    ),
    ("2 MB spec", lambda s: _append(s, "notes: '" + "x" * 2_000_000 + "'\n"), "(file)", "at most 1,000,000"),
    ("duplicate top-level key", lambda s: _append(s, "seed: 3\nseed: 4\n"), "seed", "duplicate key"),
    (
        "duplicate palette key",
        lambda s: _text(s, s.read_text().replace("palette:\n", "palette:\n  ink: '#000000'\n  ink: '#111111'\n", 1)),
        "ink",
        "duplicate key",
    ),
    (
        "nan light direction",
        lambda s: _mutate(
            s, lambda d: d["scene"].setdefault("key_light", {}).__setitem__("direction_deg", float("nan"))
        ),
        "scene.key_light.direction_deg",
        "not a finite number",
    ),
    (
        "inf light intensity",
        lambda s: _mutate(s, lambda d: d["scene"].setdefault("key_light", {}).__setitem__("intensity", float("inf"))),
        "scene.key_light.intensity",
        "not a finite number",
    ),
    (
        "-inf upscale detail",
        lambda s: _mutate(s, lambda d: d["upscale"].__setitem__("detail", float("-inf"))),
        "upscale.detail",
        "not a finite number",
    ),
    (
        "light direction 1e12",
        lambda s: _mutate(s, lambda d: d["scene"].setdefault("key_light", {}).__setitem__("direction_deg", 1e12)),
        "scene.key_light.direction_deg",
        "less than or equal to 360",
    ),
    (
        "shape point 1e12",
        lambda s: _mutate(
            s,
            lambda d: d["scene"]["layers"].append(
                {"kind": "shape", "name": "x", "shape": "rect", "points": [[0, 0], [1e12, 1]], "color": "#000000"}
            ),
        ),
        "scene.layers",
        "less than or equal to 2",
    ),
    (
        "nan shape point",
        lambda s: _mutate(
            s,
            lambda d: d["scene"]["layers"].append(
                {
                    "kind": "shape",
                    "name": "x",
                    "shape": "rect",
                    "points": [[0, 0], [float("nan"), 1]],
                    "color": "#000000",
                }
            ),
        ),
        "scene.layers",
        "not a finite number",
    ),
    (
        "list of 100,000 points",
        lambda s: _append(s, "x: [" + ",".join(f"[{i % 900},5]" for i in range(100_000)) + "]\n"),
        "(yaml)",
        "more than 10,000 items",
    ),
    (
        "polygon outside the canvas",
        lambda s: _mutate(
            s,
            lambda d: d["fixes"].append(
                {"name": "out", "action": "remove", "mask": {"polygon": [[5000 + i, 5] for i in range(300)]}}
            ),
        ),
        "fixes",
        "lie outside",
    ),
    (
        "headline with a newline",
        lambda s: _mutate(s, lambda d: d["scene"]["headline"].__setitem__("text", "TWO\nLINES")),
        "scene.headline.text",
        "line breaks are not supported",
    ),
    (
        "headline of spaces",
        lambda s: _mutate(s, lambda d: d["scene"]["headline"].__setitem__("text", "   ")),
        "scene.headline.text",
        "visible text",
    ),
    (
        "control character in the brief",
        lambda s: _mutate(s, lambda d: d.__setitem__("brief", "bell \x07 here")),
        "brief",
        "U+0007",
    ),
    (
        "escape sequence in a layer name",
        lambda s: _mutate(s, lambda d: d["scene"]["layers"][0].__setitem__("name", "\x1b[31mred")),
        "scene.layers.0.name",
        "U+001B",
    ),
    (
        "string of 30,000 characters",
        lambda s: _mutate(s, lambda d: d.__setitem__("brief", "b" * 30_000)),
        "brief",
        "at most 20,000",
    ),
    (
        "font path pointing at a png",
        lambda s: _mutate(
            s, lambda d: d["scene"]["headline"].__setitem__("font", str(_cutout(s).relative_to(s.parent)))
        ),
        "scene.headline.font",
        "not a font file",
    ),
    (
        "font file of random bytes",
        lambda s: (
            _text(s.parent / "bad.ttf", bytes(range(256)) * 40),
            _mutate(s, lambda d: d["scene"]["headline"].__setitem__("font", "bad.ttf")),
        ),
        "scene.headline.font",
        "not a font file",
    ),
    ("cutout with 200 MB of text chunks", lambda s: _png_with_text_chunk(_cutout(s), 200), "scene.layers", "refused"),
    ("cutout of 30 MP (header only)", lambda s: Image.new("1", (6000, 5000)).save(_cutout(s)), "scene.layers", "MP"),
    (
        "cutout that is not an image",
        lambda s: _text(_cutout(s), b"GIF89a but not really"),
        "scene.layers",
        "not a readable image",
    ),
    ("top level is a list", lambda s: _text(s, "- a\n- b\n"), "(top level)", "mapping"),
    ("empty file", lambda s: _text(s, ""), "(top level)", "mapping"),
    ("yaml syntax error", lambda s: _text(s, "id: [unclosed\n"), "(yaml)", "not valid YAML"),
    (
        "python object tag",
        lambda s: _text(s, "id: !!python/object/apply:os.system ['true']\n"),
        "(yaml)",
        "not valid YAML",
    ),
    (
        "many wrong fields at once",
        lambda s: _mutate(s, lambda d: d.update({f"unknown_{i}": i for i in range(200)})),
        "...",
        "more problem",
    ),
]


@pytest.mark.parametrize(("name", "breaks", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_spec_is_refused_quickly_with_file_field_reason(
    tmp_path: Path, name: str, breaks: Callable[[Path], None], field: str, words: str
) -> None:
    spec = write_campaign(tmp_path, "noir-sneaker", "broken")
    good = write_campaign(tmp_path, "atrium-residences", "good")
    breaks(spec)
    # time without tracemalloc (it slows allocation-heavy parsing about 7x), then the peak memory in a second pass
    started, cpu_started = time.perf_counter(), time.process_time()
    with pytest.raises(SpecError) as info:
        load_campaign(spec)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    tracemalloc.start()
    try:
        with pytest.raises(SpecError):
            load_campaign(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problems = info.value.problems
    assert all(p.file == str(spec) for p in problems)
    hits = [p.reason for p in problems if p.field == field or p.field.startswith(field + ".")]
    assert any(words.lower() in r.lower() for r in hits), [str(p) for p in problems]
    assert len(str(info.value)) < 4_000  # bounded, whatever the input
    assert cpu < CPU_SECONDS and elapsed < WALL_SECONDS, (cpu, elapsed)
    assert peak < PEAK_BYTES, peak
    # the others go on
    loaded, bad = load_all(tmp_path)
    assert list(loaded) == ["good"] and len(bad) == 1
    assert load_campaign(good).id == "good"


def test_a_long_list_of_offending_points_is_shown_as_a_few_and_the_count(tmp_path: Path) -> None:
    spec = write_campaign(tmp_path, "noir-sneaker")
    _mutate(
        spec,
        lambda d: d["fixes"].append(
            {"name": "o", "action": "remove", "mask": {"polygon": [[9000 + i, 1] for i in range(300)]}}
        ),
    )
    with pytest.raises(SpecError) as info:
        load_campaign(spec)
    reason = next(p.reason for p in info.value.problems if p.field.endswith("mask.polygon"))
    assert reason.count("[") == MAX_ITEMS_SHOWN and "(300 in all)" in reason


def test_the_loader_itself_failing_on_one_spec_does_not_stop_load_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from media_routes import spec as spec_module

    write_campaign(tmp_path, "noir-sneaker", "first")
    write_campaign(tmp_path, "atrium-residences", "second")
    real = spec_module.check_campaign_files

    def broken_for_first(s: Any, folder: Path, *, file: str) -> Any:
        if folder.name == "first":
            raise MemoryError("simulated")
        return real(s, folder, file=file)

    monkeypatch.setattr(spec_module, "check_campaign_files", broken_for_first)
    good, bad = load_all(tmp_path)
    assert list(good) == ["second"]
    assert "MemoryError: simulated" in str(bad[0]) and "first" in str(bad[0])


def test_a_nan_light_direction_never_reaches_the_renderer(tmp_path: Path) -> None:
    """Issue #15: `.nan` validated and delivered a black frame. It is refused at validation now."""
    spec = write_campaign(tmp_path, "noir-sneaker")
    _mutate(spec, lambda d: d["scene"].setdefault("key_light", {}).__setitem__("direction_deg", float("nan")))
    assert ".nan" in spec.read_text()
    assert np.isnan(yaml.safe_load(spec.read_text())["scene"]["key_light"]["direction_deg"])
    with pytest.raises(SpecError, match="direction_deg: nan is not a finite number"):
        load_campaign(spec)


@pytest.mark.parametrize("example", ["noir-sneaker", "atrium-residences"])
def test_the_blank_gate_stops_what_a_nan_light_direction_renders(tmp_path: Path, example: str) -> None:
    """The second line of defence: were a NaN to get past validation (set on the parsed spec here), the
    compositor's near-black frame, with the headline still on it, fails the output_not_blank gate."""
    from media_routes.engine.base_composition import compose
    from media_routes.quality import gates

    campaign = load_campaign(write_campaign(tmp_path, example))
    assert gates.image_problems(compose(campaign, seed=1).image) == []
    object.__setattr__(campaign.spec.scene.key_light, "direction_deg", float("nan"))
    with np.errstate(invalid="ignore"):
        problems = gates.image_problems(compose(campaign, seed=1).image)
    assert any("black image" in p for p in problems), problems


# --------------------------------------------------------------------------------------------------
# Text fidelity: refused at validation, or set faithfully
# --------------------------------------------------------------------------------------------------


def _headline(spec: Path, **fields: Any) -> None:
    _mutate(spec, lambda d: d["scene"]["headline"].update(fields))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"text": "FLY \U0001f9a9"}, "no glyph for '\U0001f9a9' (U+1F9A9 FLAMINGO)"),
        ({"text": "नमस्ते"}, "no glyph for 'न' (U+0928 DEVANAGARI LETTER NA)"),
        ({"text": "سلام عليكم", "tracking": 0.05}, "breaks the shaping of this script; set tracking: 0"),
        ({"text": "שלום עולם", "tracking": 0.1}, "breaks the shaping of this script"),
    ],
    ids=["emoji the font lacks", "devanagari the font lacks", "arabic with tracking", "hebrew with tracking"],
)
def test_a_headline_the_font_cannot_set_faithfully_is_refused(
    tmp_path: Path, fields: dict[str, Any], words: str
) -> None:
    spec = write_campaign(tmp_path, "noir-sneaker")
    _headline(spec, **fields)
    with pytest.raises(SpecError) as info:
        load_campaign(spec)
    reasons = [p.reason for p in info.value.problems if p.field == "scene.headline.text"]
    assert any(words in r for r in reasons), [str(p) for p in info.value.problems]


def _headline_mask(spec: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from media_routes.engine.base_composition import _headline as render_headline

    campaign = load_campaign(spec)
    result = render_headline(campaign, campaign.spec.scene.canvas_size)
    assert result is not None
    return result


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_arabic_without_tracking_is_shaped_and_set_right_to_left(tmp_path: Path) -> None:
    """Checked against Pillow's own renderings of the same string: the Raqm (shaped, bidi) one and the
    basic (unshaped, left to right) one, placed by their own ink boxes."""
    from PIL import ImageDraw, ImageFont

    from media_routes.lib import text

    spec = write_campaign(tmp_path, "noir-sneaker")
    words = "سلام عليكم"
    _headline(spec, text=words, tracking=0.0, center=[0.5, 0.5], size=0.1)
    mask, info = _headline_mask(spec)
    drawn = mask > 0.5
    x0, y0, x1, y1 = info["headline_bbox"]
    drawn_crop = drawn[y0 : y1 + 1, x0 : x1 + 1]

    def reference(engine: ImageFont.Layout) -> np.ndarray:
        font = ImageFont.truetype(
            str(text.builtin_font_path("DejaVuSans-Bold")), info["headline_font_px"] * 2, layout_engine=engine
        )
        img = Image.new("L", (4000, 600), 0)
        ImageDraw.Draw(img).text((100, 400), words, font=font, fill=255, anchor="ls")
        box = img.getbbox()
        assert box is not None
        crop = img.crop(box).resize((x1 - x0 + 1, y1 - y0 + 1), Image.Resampling.BOX)
        return np.asarray(crop) > 127

    shaped, basic = reference(ImageFont.Layout.RAQM), reference(ImageFont.Layout.BASIC)
    assert _iou(drawn_crop, shaped) > 0.8 > _iou(drawn_crop, basic) + 0.1, (
        _iou(drawn_crop, shaped),
        _iou(drawn_crop, basic),
    )


def test_a_tracked_headline_is_centred_and_fits_without_clipping_a_glyph(tmp_path: Path) -> None:
    """The drawn ink is measured, not estimated: the box is centred and inside max_width, and the last
    glyph is all there (its ink matches the same letter drawn alone)."""
    spec = write_campaign(tmp_path, "noir-sneaker")
    _headline(spec, text="WAVES OF LIGHT W", tracking=0.4, max_width=0.8, center=[0.5, 0.5])
    mask, info = _headline_mask(spec)
    w = mask.shape[1]
    x0, y0, x1, y1 = info["headline_bbox"]
    assert x1 - x0 + 1 <= 0.8 * w + 1
    assert abs((x0 + x1) / 2 - w / 2) <= 1.0
    columns = np.nonzero((mask > 0.5).any(axis=0))[0]
    gaps = np.nonzero(np.diff(columns) > 1)[0]
    last_glyph_width = columns[-1] - columns[gaps[-1] + 1] + 1
    from PIL import ImageFont

    from media_routes.lib import text

    font = ImageFont.truetype(str(text.builtin_font_path("DejaVuSans-Bold")), info["headline_font_px"])
    alone = text.ink_width(font, "W", 0.0)
    assert abs(last_glyph_width - alone) <= 2, (last_glyph_width, alone)


# --------------------------------------------------------------------------------------------------
# CLI arguments: refused before any work (no instance created, nothing rendered), without a traceback
# --------------------------------------------------------------------------------------------------

LONG_ID = "a" * 65
ARG_CASES: list[tuple[str, list[str], int, str]] = [
    # (name, argv after `media-routes` ({dir}: the campaigns folder, {tmp}: a scratch folder), exit status, words)
    ("negative seed", ["reroll", "k_upscale", "--campaign", "shoe", "--seed", "-1"], 2, "out of range"),
    ("seed of 2**70", ["reroll", "motion", "--campaign", "shoe", "--seed", str(2**70)], 2, "out of range"),
    ("seed 2**31", ["reroll", "motion", "--campaign", "shoe", "--seed", str(2**31)], 2, "0 <= seed < 2147483648"),
    ("seed not a number", ["reroll", "motion", "--campaign", "shoe", "--seed", "lucky"], 2, "not an integer"),
    ("seed with a decimal point", ["reroll", "motion", "--campaign", "shoe", "--seed", "1.5"], 2, "not an integer"),
    ("campaign ../x", ["reroll", "motion", "--campaign", "../x"], 2, "not a campaign id"),
    ("campaign absolute path", ["reroll", "motion", "--campaign", "{dir}/shoe"], 2, "not a campaign id"),
    ("demo campaign path escape", ["demo", "--campaign", "../../etc"], 2, "not a campaign id"),
    ("campaign in capitals", ["trace", "Shoe"], 2, "not a campaign id"),
    ("campaign id of 65 chars", ["routes", LONG_ID], 2, "at most 64 characters"),
    ("campaign with a slash", ["estimate", "shoe/x"], 2, "not a campaign id"),
    ("costs of ../x", ["costs", "../x"], 2, "not a campaign id"),
    ("approve ../x", ["approve", "../x", "1x1"], 2, "not a campaign id"),
    ("drift of a path", ["drift", "/etc/passwd"], 2, "not a campaign id"),
    ("unknown stage", ["reroll", "upscale", "--campaign", "shoe"], 2, "invalid choice"),
    ("unknown format", ["trace", "shoe", "--format", "5x4"], 2, "unknown format"),
    ("approve unknown format", ["approve", "shoe", "3x2"], 2, "unknown format"),
    (
        "reroll a format the spec lacks",
        ["reroll", "aspect_outpaint", "--campaign", "tower", "--format", "1x1"],
        2,
        "has no format '1x1'",
    ),
    ("estimate a format the spec lacks", ["estimate", "tower", "--format", "9x16"], 2, "has no format '9x16'"),
    ("estimate re-roll of no stage", ["estimate", "shoe", "--reroll", "colour"], 2, "invalid choice"),
    ("unknown demo campaign", ["demo", "--campaign", "nope"], 1, "unknown or invalid campaign(s): nope"),
    ("reroll of an unknown campaign", ["reroll", "motion", "--campaign", "nope"], 1, "cannot re-roll"),
    ("demo --out is a file", ["demo", "--out", "{tmp}/a-file"], 2, "exists and is not a folder"),
    ("demo --out under a file", ["demo", "--out", "{tmp}/a-file/deliverables"], 2, "cannot create the folder"),
    ("costs --csv is a folder", ["costs", "--csv", "{tmp}"], 2, "is a folder, not a file"),
    ("costs --csv in a missing folder", ["costs", "--csv", "{tmp}/missing/rows.csv"], 2, "does not exist"),
    ("drift --html is a file", ["drift", "shoe", "--html", "{tmp}/a-file"], 2, "exists and is not a folder"),
]


@pytest.mark.parametrize(("name", "argv", "status", "words"), ARG_CASES, ids=[c[0] for c in ARG_CASES])
def test_a_bad_cli_argument_is_refused_before_any_work(
    tmp_path: Path,
    campaigns_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    argv: list[str],
    status: int,
    words: str,
) -> None:
    from media_routes.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("MEDIA_ROUTES_CAMPAIGNS_DIR", str(campaigns_dir))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "a-file").write_text("not a folder")
    args = [a.replace("{dir}", str(campaigns_dir)).replace("{tmp}", str(scratch)) for a in argv]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        code = main(args)
    except SystemExit as exited:  # argparse's refusal
        code = exited.code
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == status, err
    assert words in " ".join(err.split()), err
    assert "Traceback" not in err
    assert not home.exists(), "no instance may be created for a refused command"
    assert elapsed < WALL_SECONDS and peak < PEAK_BYTES, (elapsed, peak)


@pytest.mark.integration
def test_the_good_campaign_renders_next_to_a_folder_of_broken_ones(
    tmp_path: Path, campaigns_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from media_routes.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_ROOT", str(tmp_path / "media"))
    shutil.rmtree(campaigns_dir / "shoe")  # keep 'tower' (one format) as the good one
    broken = {name: breaks for name, breaks, _, _ in CASES}
    chosen = ["non-utf8 byte", "yaml nested 500 deep", "nan light direction", "cutout of 30 MP (header only)"]
    for i, name in enumerate(chosen):
        broken[name](write_campaign(campaigns_dir, "noir-sneaker", f"broken-{i}"))
    _headline(write_campaign(campaigns_dir, "noir-sneaker", "broken-emoji"), text="FLY \U0001f9a9")
    out_dir = tmp_path / "deliverables"
    assert main(["demo", "--out", str(out_dir), "--campaigns-dir", str(campaigns_dir)]) == 0
    err = capsys.readouterr().err
    assert err.count("skipping an invalid campaign") == len(chosen) + 1
    for i in range(len(chosen)):
        assert str(campaigns_dir / f"broken-{i}" / "campaign.yaml") in err
    assert "no glyph for" in err and "Traceback" not in err
    assert (out_dir / "tower" / "16x9" / "still.png").stat().st_size > 10_000
    assert (out_dir / "tower" / "16x9" / "motion.mp4").stat().st_size > 10_000
    assert not any(p.name.startswith("broken") for p in out_dir.iterdir())


def test_an_unexpected_error_is_one_line_and_the_traceback_waits_for_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt instance database (a real failure no command expects) ends in one line, exit status 1."""
    import shutil

    from media_routes.cli import main

    home = tmp_path / "home"
    (home / "history").mkdir(parents=True)
    shutil.copyfile(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster.yaml")
    (home / "history" / "runs.db").write_bytes(b"not a database, not at all" * 100)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("MEDIA_ROUTES_VERBOSE", raising=False)
    assert main(["trace", "tower"]) == 1
    err = capsys.readouterr().err
    assert "error (trace): DatabaseError: (sqlite3.DatabaseError) file is not a database" in " ".join(err.split())
    assert "Traceback" not in err
    monkeypatch.setenv("MEDIA_ROUTES_VERBOSE", "1")
    with pytest.raises(Exception, match="file is not a database"):
        main(["trace", "tower"])
