"""Benchmark: the reference decode (``media_routes.lib.video_decode.reference_rgb``) against swscale's conversion.

Method
------
One deterministic 1080x1920 (the 9x16 video size) H.264 yuv420p clip of ``--frames`` frames (default 240: 10 s at
24 fps) is encoded with the project's ``encode_mp4`` from a moving gradient with flat brand patches. It is then
decoded ``--repeat`` times (default 3) three ways, alternating, each timed with ``time.perf_counter`` around the
whole loop (H.264 decode included):

* ``decode_only`` - the frames decoded and not converted: the floor every method pays;
* ``swscale``     - ``frame.reformat(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG")``, what the
  project measured through before the reference decode;
* ``reference``   - ``reference_rgb(frame)``: planes read as they are, chroma interpolated at H.264's sample
  positions, colour-science's BT.709 matrix.

The table shows medians and the ratio of each to ``swscale`` measured in the same run, and what the reference costs
per frame above the decode. The accuracy columns compare both conversions with the source still on the flat
patches (mean absolute level error over R, G, B). Nothing here asserts on time. Results go to
``benchmarks/results/bench_video_decode.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from media_routes.engine.motion import encode_mp4  # noqa: E402
from media_routes.lib.video_decode import reference_rgb, swscale_rgb  # noqa: E402

W, H = 1080, 1920
PATCHES = {(47, 62, 70): (slice(1300, 1700), slice(100, 500)), (253, 200, 5): (slice(200, 500), slice(600, 1000))}


def clip(path: Path, frames: int) -> None:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

    def frame(i: int) -> np.ndarray:
        img = np.stack([40 + 150 * xx / W, 60 + 120 * yy / H, 90 + 60 * np.sin((xx + 4 * i) / 53)], axis=-1)
        img = img.astype(np.uint8)
        for colour_, (rows, cols) in PATCHES.items():
            img[rows, cols] = colour_
        return img

    encode_mp4((frame(i) for i in range(frames)), path, fps=24, size=(W, H))


def decode(path: Path, convert: Callable[[av.VideoFrame], Any] | None) -> tuple[float, list[np.ndarray]]:
    firsts: list[np.ndarray] = []
    t0 = time.perf_counter()
    with av.open(str(path)) as container:
        for i, f in enumerate(container.decode(video=0)):
            out = convert(f) if convert is not None else None
            if i == 0 and out is not None:
                firsts.append(out)
    return time.perf_counter() - t0, firsts


def level_error(rgb: np.ndarray) -> float:
    errs = [np.abs(rgb[r, c].reshape(-1, 3).mean(axis=0) - col).mean() for col, (r, c) in PATCHES.items()]
    return round(float(np.mean(errs)), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_video_decode.json")
    args = ap.parse_args()
    methods: dict[str, Callable[[av.VideoFrame], Any] | None] = {
        "decode_only": None,
        "swscale": swscale_rgb,
        "reference": reference_rgb,
    }
    samples: dict[str, list[float]] = {m: [] for m in methods}
    errors: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        clip(path, args.frames)
        for _ in range(args.repeat):
            for name, convert in methods.items():
                seconds, firsts = decode(path, convert)
                samples[name].append(seconds)
                if firsts:
                    errors[name] = level_error(firsts[0])
    median = {m: statistics.median(v) for m, v in samples.items()}
    result = {
        "benchmark": "bench_video_decode",
        "size": [W, H],
        "frames": args.frames,
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "samples_s": samples,
        "median_s": median,
        "ratio_reference_over_swscale": round(median["reference"] / median["swscale"], 2),
        "reference_ms_per_frame_above_decode": round(
            1000 * (median["reference"] - median["decode_only"]) / args.frames, 2
        ),
        "swscale_ms_per_frame_above_decode": round(1000 * (median["swscale"] - median["decode_only"]) / args.frames, 2),
        "flat_patch_mean_abs_level_error": errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| method | median s | x swscale | ms/frame above decode | flat-patch level error |")
    print("|---|---:|---:|---:|---:|")
    for m in methods:
        above = 1000 * (median[m] - median["decode_only"]) / args.frames
        print(f"| {m} | {median[m]:.2f} | {median[m] / median['swscale']:.2f} | {above:.1f} | {errors.get(m, '-')} |")
    print(f"load average after: {result['load_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
