"""How a real browser paints an MP4 frame, against the reference decode and swscale (issue #16 item 1).

Debian's chromium (through Playwright) plays the clip in a ``<video>`` element, seeks to the middle of each chosen
frame, draws it on a 2D canvas and reads the pixels back (``getImageData``). The same frames are decoded with the
project's reference decode (``media_routes.lib.video_decode.reference_rgb``) and with swscale's conversion, and
the differences are reported per clip: mean signed level difference per channel, mean absolute difference, p99 and
max over the whole frame, and the same on flat patches when the clip is the generated one.

This is a measurement, not a benchmark: it asserts nothing and times nothing. Run from the repository::

    python benchmarks/measure_browser_decode.py                      # a generated clip of flat brand patches
    python benchmarks/measure_browser_decode.py DIR/noir-sneaker/4x5/motion.mp4 ...   # and demo deliverables

and it writes ``benchmarks/results/browser_decode.json`` (``--out`` to change). Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media_routes.engine.motion import encode_mp4  # noqa: E402
from media_routes.lib import video_decode as vd  # noqa: E402
from media_routes.lib.imaging import srgb_to_lab  # noqa: E402
from media_routes.quality.delta_e import delta_e00  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SLATE, YELLOW, WHITE = (47, 62, 70), (245, 217, 10), (240, 238, 232)
AUTHORED = {"slate": SLATE, "yellow": YELLOW, "white": WHITE}
FLAT = {
    "slate": (slice(250, 330), slice(40, 280)),
    "yellow": (slice(80, 160), slice(80, 260)),
    "white": (slice(230, 310), slice(380, 580)),
}

_READ_FRAME = """async ([data, times]) => {
    const bin = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const v = document.createElement('video');
    v.muted = true;
    v.src = URL.createObjectURL(new Blob([bin], {type: 'video/mp4'}));
    await new Promise((ok, bad) => {
        v.onloadeddata = ok;
        v.onerror = () => bad(new Error('decode error ' + (v.error && v.error.code)));
    });
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d', {willReadFrequently: true});
    const out = [];
    for (const t of times) {
        await new Promise(ok => { v.onseeked = ok; v.currentTime = t; });
        g.drawImage(v, 0, 0);
        const px = g.getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let i = 0; i < px.length; i += 32768) s += String.fromCharCode.apply(null, px.subarray(i, i + 32768));
        out.push(btoa(s));
    }
    return [c.width, c.height, out];
}"""


def flat_clip(path: Path) -> None:
    """Six frames of flat slate, yellow and white patches (the same clip as test_video_decode.py)."""
    still = np.zeros((360, 640, 3), np.uint8)
    still[:] = SLATE
    still[40:200, 40:300] = YELLOW
    still[200:340, 340:620] = WHITE
    encode_mp4([still] * 6, path, fps=24, size=(640, 360), crf=12)


def browser_frames(path: Path, frames: list[int], fps: float) -> list[np.ndarray]:
    from playwright.sync_api import sync_playwright

    data = base64.b64encode(path.read_bytes()).decode()
    times = [(i + 0.5) / fps for i in frames]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_content("<html><body></body></html>")
            w, h, shots = page.evaluate(_READ_FRAME, [data, times])
        finally:
            browser.close()
    return [np.frombuffer(base64.b64decode(s), np.uint8).reshape(h, w, 4)[..., :3] for s in shots]


def decoded(path: Path, frames: list[int]) -> tuple[list[np.ndarray], list[np.ndarray], float, str]:
    ref, sws = [], []
    wanted = set(frames)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 24)
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                ref.append(vd.reference_rgb(frame))
                sws.append(vd.swscale_rgb(frame))
                tags = f"colorspace={frame.colorspace} range={frame.color_range} format={frame.format.name}"
    return ref, sws, fps, tags


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    d = a.astype(np.int32) - b.astype(np.int32)
    return {
        "mean_signed_rgb": [round(float(v), 3) for v in d.reshape(-1, 3).mean(axis=0)],
        "mean_abs": round(float(np.abs(d).mean()), 3),
        "p99_abs": float(np.percentile(np.abs(d), 99)),
        "max_abs": int(np.abs(d).max()),
    }


def _delta_e(patch: np.ndarray, rgb: tuple[int, int, int]) -> float:
    lab = srgb_to_lab(patch.reshape(1, -1, 3))[0].astype(np.float64).mean(axis=0)
    return round(float(delta_e00(lab, srgb_to_lab(np.array([[rgb]], np.uint8))[0, 0])), 3)


def measure(path: Path, *, flat: bool) -> dict[str, Any]:
    with av.open(str(path)) as container:
        n = container.streams.video[0].frames or sum(1 for _ in container.decode(video=0))
    frames = sorted({0, n // 2, n - 1})
    ref, sws, fps, tags = decoded(path, frames)
    shown = browser_frames(path, frames, fps)
    out: dict[str, Any] = {"clip": str(path), "frames": frames, "tags": tags, "per_frame": []}
    for i, (r, s, b) in enumerate(zip(ref, sws, shown, strict=True)):
        row: dict[str, Any] = {
            "frame": frames[i],
            "chromium_minus_reference": compare(b, r),
            "chromium_minus_swscale": compare(b, s),
        }
        if flat:
            row["flat_patches"] = {
                name: {
                    "chromium": [round(float(v), 2) for v in b[rows, cols].reshape(-1, 3).mean(axis=0)],
                    "reference": [round(float(v), 2) for v in r[rows, cols].reshape(-1, 3).mean(axis=0)],
                    "swscale": [round(float(v), 2) for v in s[rows, cols].reshape(-1, 3).mean(axis=0)],
                    # CIEDE2000 of each decode's patch mean to the colour the still had
                    "delta_e_to_authored": {
                        k: _delta_e(img[rows, cols], AUTHORED[name]) for k, img in (("chromium", b), ("reference", r))
                    },
                }
                for name, (rows, cols) in FLAT.items()
            }
        out["per_frame"].append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", type=Path, help="MP4 files measured after the generated clip of flat patches")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "browser_decode.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "flat.mp4"  # always first: the flat patches say what each decode does to a colour
        flat_clip(generated)
        results.append(measure(generated, flat=True) | {"clip": "generated flat patches (640x360, crf 12)"})
        results.extend(measure(c, flat=False) for c in args.clips)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"chromium": CHROMIUM, "results": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
