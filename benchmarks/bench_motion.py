"""Benchmark: ``render_frames`` + ``encode_mp4`` for a 10 s, 24 fps, 1080x1920 push-in from a 2160x3840 still.

Method
------
240 frames of 1080x1920 do not fit comfortably in memory (1.5 GB as RGB), so frames are never
pre-rendered. Instead three phases pull frames from identical, freshly created ``render_frames``
generators (same deterministic synthetic still, same move), each timed end to end with
``time.perf_counter``:

1. ``render``  - the generator is drained without encoding: the cost of rendering alone;
2. ``ours``    - ``encode_mp4(render_frames(...))``: explicit rgb24 -> yuv420p BT.709 conversion, stream
   colour tags, temp file + ``os.replace``, ``+faststart`` (which rewrites the file to move ``moov``);
3. ``bare``    - the baseline: a minimal PyAV loop with the same codec settings (libx264, yuv420p,
   crf 20, preset veryfast, 2 threads, ``+faststart``) that hands rgb24 frames to the encoder and lets
   PyAV convert implicitly, writing straight to its final path.

Encode time is estimated as phase time minus the ``render`` time (rendering is deterministic and
identical in all phases, so the subtraction is fair up to run-to-run noise; the phases run in the order
render, ours, bare, and ``--repeat`` repeats the whole sequence, reporting medians). The headline ratio
is ``ours / bare`` for both the end-to-end and the encode-only estimate. No timing is asserted.
Results go to ``benchmarks/results/bench_motion.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from media_routes.engine.motion import ENCODE_THREADS, encode_mp4, probe_mp4, render_frames

STILL = (2160, 3840)  # width, height
OUT = (1080, 1920)
FPS = 24
DURATION = 10.0
CAMERA = "push_in"
STRENGTH = 0.15
CRF = 20
PRESET = "veryfast"


def make_still() -> np.ndarray:
    w, h = STILL
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([30 + 190 * xx / w, 200 - 150 * yy / h, 100 + 60 * np.sin(xx / 53 + yy / 71)], axis=-1)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(out, (w // 2, h // 2), w // 4, (205, 150, 125), -1)
    for i in range(20):
        cv2.line(out, (100, 150 + 180 * i), (w - 100, 200 + 180 * i), (20, 20, 20), 3)
    cv2.putText(out, "PUSH IN", (200, 600), cv2.FONT_HERSHEY_SIMPLEX, 8, (250, 250, 250), 16)
    return out


def frames(still: np.ndarray):
    return render_frames(still, OUT, duration_s=DURATION, fps=FPS, camera=CAMERA, strength=STRENGTH)


def bare_encode(frame_iter, path: Path) -> int:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = OUT
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": PRESET}
        stream.codec_context.thread_count = ENCODE_THREADS
        n = 0
        for arr in frame_iter:
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = n
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
            n += 1
        for packet in stream.encode(None):
            container.mux(packet)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    still = make_still()
    n_expected = round(DURATION * FPS)
    samples: dict[str, list[float]] = {"render": [], "ours": [], "bare": []}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            n = sum(1 for _ in frames(still))
            samples["render"].append(time.perf_counter() - t0)
            assert n == n_expected

            ours_path = Path(tmp) / "ours.mp4"
            t0 = time.perf_counter()
            stats = encode_mp4(frames(still), ours_path, fps=FPS, size=OUT, crf=CRF, preset=PRESET)
            samples["ours"].append(time.perf_counter() - t0)
            sizes["ours"] = int(stats["bytes"])

            bare_path = Path(tmp) / "bare.mp4"
            t0 = time.perf_counter()
            n = bare_encode(frames(still), bare_path)
            samples["bare"].append(time.perf_counter() - t0)
            sizes["bare"] = bare_path.stat().st_size
            assert n == n_expected
        probe = probe_mp4(ours_path)

    med = {k: statistics.median(v) for k, v in samples.items()}
    enc_ours = med["ours"] - med["render"]
    enc_bare = med["bare"] - med["render"]
    result = {
        "benchmark": "bench_motion",
        "still": list(STILL),
        "out": list(OUT),
        "fps": FPS,
        "duration_s": DURATION,
        "frames": n_expected,
        "camera": CAMERA,
        "strength": STRENGTH,
        "crf": CRF,
        "preset": PRESET,
        "threads": ENCODE_THREADS,
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "samples_s": samples,
        "median_s": med,
        "render_fps": n_expected / med["render"],
        "encode_s_estimate": {"ours": enc_ours, "bare": enc_bare},
        "ratio_total_ours_over_bare": med["ours"] / med["bare"],
        "ratio_encode_ours_over_bare": enc_ours / enc_bare if enc_bare > 0 else None,
        "bytes": sizes,
        "probe": probe,
    }
    print(
        f"{n_expected} frames {OUT[0]}x{OUT[1]} from {STILL[0]}x{STILL[1]}, {CAMERA} {STRENGTH}, "
        f"libx264 crf {CRF} {PRESET}, {ENCODE_THREADS} threads, cpus={os.cpu_count()}, repeat={args.repeat}"
    )
    print(f"{'phase':<22} {'seconds':>8}")
    print(f"{'render only':<22} {med['render']:>8.2f}   ({result['render_fps']:.1f} frames/s)")
    print(f"{'ours: render+encode':<22} {med['ours']:>8.2f}   (encode ~{enc_ours:.2f})")
    print(f"{'bare: render+encode':<22} {med['bare']:>8.2f}   (encode ~{enc_bare:.2f})")
    print(
        f"ratio ours/bare: total {result['ratio_total_ours_over_bare']:.3f}, encode-only "
        f"{result['ratio_encode_ours_over_bare']:.3f}"
    )
    print(f"bytes: ours {sizes['ours']}, bare {sizes['bare']}; probe: {probe}")
    path = Path(__file__).resolve().parent / "results" / "bench_motion.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
