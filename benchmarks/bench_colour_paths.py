"""Benchmark: the brand lock and measure on every video frame, and the float32 colour paths under them (issue #20).

Method
------
noir-sneaker's base composition (local engine, deterministic) at a 4x5 video size (1080x1350) is the still; its label
map places the headline's glyphs (exact coverage) and every palette colour found in the picture. A ``--frames``-frame
push-in is rendered from it with the motion stage's own code (``render_frames`` and ``label_frames``), once, and the
same frames are used by every measurement below (``time.perf_counter``, best of ``--repeat``):

1. ``render``: rendering the frames and their label maps, and ``encode``: encoding them (H.264, the motion
   stage's ``encode_mp4``): together the bare image work of a clip (the baseline);
2. ``lock``: ``brand.correct`` per frame as the motion stage calls it (``restore_frames``: 2 passes, 0.3 tolerance);
3. ``measure``: ``brand.measure`` per frame as the motion stage calls it on decoded frames (region means, interior
   p95);
4. the colour maths alone on every labelled pixel of every frame: sRGB -> L*a*b*, L*a*b* -> sRGB and CIEDE2000
   against the headline colour, through the project's float32 paths and through colour-science's float64 reference
   functions (``colour.XYZ_to_Lab(colour.RGB_to_XYZ(...))``, ``colour.XYZ_to_RGB(colour.Lab_to_XYZ(...))``,
   ``colour.delta_E(..., method="CIE 2000")``), with the largest difference between the two.

Ratios are ``lock / (render + encode)``, ``measure / (render + encode)`` and ``project / colour-science`` per
conversion. Results go to ``benchmarks/results/bench_colour_paths.json``. No timing is asserted.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_colour_paths.py [--frames 48] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from media_routes.engine.base_composition import compose
from media_routes.engine.motion import encode_mp4, label_frames, render_frames
from media_routes.lib.imaging import lab_to_srgb, srgb_to_lab
from media_routes.quality import brand
from media_routes.quality.delta_e import delta_e00
from media_routes.spec import load_campaign
from media_routes.testing.campaigns import EXAMPLES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour

SIZE = (1080, 1350)
RESULTS = Path(__file__).with_name("results") / "bench_colour_paths.json"


def still_and_labels() -> tuple[np.ndarray, np.ndarray, brand.Palette]:
    campaign = load_campaign(EXAMPLES / "noir-sneaker" / "campaign.yaml")
    base = compose(campaign, seed=campaign.spec.seed)
    palette = brand.Palette.from_dict(campaign.spec.palette)
    alpha = base.headline_alpha
    assert alpha is not None
    labels = brand.locate(base.image, palette, exact={"electric_yellow": alpha})
    return base.image, labels, palette


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    still, labels, palette = still_and_labels()
    move = {"duration_s": args.frames / 24, "fps": 24, "camera": "push_in", "strength": 0.15}

    def render() -> tuple[list[np.ndarray], list[np.ndarray]]:
        return list(render_frames(still, SIZE, **move)), list(label_frames(labels, SIZE, **move))  # type: ignore[arg-type]

    frames, maps = render()
    pixels = np.concatenate([f[m > 0] for f, m in zip(frames, maps, strict=True)])
    target = palette.lab()[palette.names.index("electric_yellow")]
    lab64 = np.asarray(colour.XYZ_to_Lab(colour.RGB_to_XYZ(pixels / 255.0, "sRGB", apply_cctf_decoding=True)))

    def lock() -> list[np.ndarray]:
        return [brand.correct(f, m, palette, passes=2, tolerance=0.3) for f, m in zip(frames, maps, strict=True)]

    def measure() -> list[dict]:
        return [brand.measure(f, m, palette, per_pixel=False) for f, m in zip(frames, maps, strict=True)]

    def reference_lab_to_srgb() -> np.ndarray:
        encoded = colour.XYZ_to_RGB(colour.Lab_to_XYZ(lab64), "sRGB", apply_cctf_encoding=True)
        return np.rint(np.clip(encoded, 0, 1) * 255)

    def encode() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            encode_mp4(frames, Path(tmp) / "clip.mp4", fps=24, size=SIZE)

    timings = {name: best(fn, args.repeat) for name, fn in [("render", render), ("encode", encode)]}
    timings |= {name: best(fn, args.repeat) for name, fn in [("lock", lock), ("measure", measure)]}
    bare = timings["render"] + timings["encode"]
    maths = {
        "srgb_to_lab": (
            lambda: srgb_to_lab(pixels),
            lambda: colour.XYZ_to_Lab(colour.RGB_to_XYZ(pixels / 255.0, "sRGB", apply_cctf_decoding=True)),
        ),
        "lab_to_srgb": (lambda: lab_to_srgb(lab64), reference_lab_to_srgb),
        "ciede2000": (
            lambda: delta_e00(lab64, target[None, :]),
            lambda: colour.delta_E(lab64, target[None, :], method="CIE 2000"),
        ),
    }
    conversions = {}
    for name, (ours, reference) in maths.items():
        mine, theirs = best(ours, args.repeat), best(reference, args.repeat)
        got, want = np.asarray(ours(), np.float64), np.asarray(reference(), np.float64)
        conversions[name] = {
            "project_s": round(mine, 4),
            "colour_science_s": round(theirs, 4),
            "ratio": round(mine / theirs, 3),
            "max_abs_difference": float(np.abs(got - want).max()),
        }
    out = {
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "colour_science": colour.__version__,
        "size": SIZE,
        "frames": args.frames,
        "labelled_pixels": int(len(pixels)),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "ratios": {
            "lock / (render + encode)": round(timings["lock"] / bare, 3),
            "measure / (render + encode)": round(timings["measure"] / bare, 3),
        },
        "conversions": conversions,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
