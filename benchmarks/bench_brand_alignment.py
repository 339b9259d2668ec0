"""Benchmark: is the brand verified in a hosted clip's own frames before it is restored? (issue #14 item 5)

Method
------
noir-sneaker's base composition (local engine, deterministic) is the still, at the 4x5 video size (1080x1350), with
its label map as the base stage locates it (the headline's glyphs). For each camera move the stubs make
(``media_routes.testing.stubs.base.image_video_frames``: ``push_in``, ``hard_cut``, ``whip_pan``, ``wrap_scroll``)
the Kling stub's encoder renders the provider's clip (H.264, ``--long-side`` px, 5 s at 24 fps); the motion stage's
code then resamples it to ``--fps`` and the video size, estimates the ECC warps, verifies every frame
(``HostedClip.estimate_warps``) and restores brand colour (``brand.restore_frames``) only in the verified regions.

Per clip it reports the lost frames; the ECC correlation, presence (share of the warped headline within 20
CIEDE2000 of the brand colour in the provider's pixels) and stray share (brand colour outside the warped map) in the
verified and in the lost frames; the brand-coloured pixels painted (within 2.0 CIEDE2000 of electric yellow in the
delivered frame, not in the provider's) outside verified alignment, which must be 0, against what restoring on the
unverified warp (the previous behaviour) paints in the same frames; and the time the verification adds per frame.
Results go to ``benchmarks/results/bench_brand_alignment.json``.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_brand_alignment.py [--long-side 640] [--fps 12]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from media_routes.engine.base_composition import compose
from media_routes.hosted.motion import HostedClip
from media_routes.lib.imaging import srgb_to_lab
from media_routes.quality import brand
from media_routes.quality.delta_e import delta_e00
from media_routes.spec import load_campaign
from media_routes.testing.campaigns import EXAMPLES
from media_routes.testing.stubs.base import VIDEO_MOTIONS
from media_routes.testing.stubs.kling_stub import render_mp4, video_size_for

SIZE = (1080, 1350)
DURATION_S = 5
RESULTS = Path(__file__).with_name("results") / "bench_brand_alignment.json"


def still_and_labels() -> tuple[np.ndarray, np.ndarray, brand.Palette]:
    campaign = load_campaign(EXAMPLES / "noir-sneaker" / "campaign.yaml")
    base = compose(campaign, seed=campaign.spec.seed)
    palette = brand.Palette.from_dict(campaign.spec.palette)
    image = cv2.resize(base.image, SIZE, interpolation=cv2.INTER_LANCZOS4)
    alpha = cv2.resize(base.headline_alpha, SIZE, interpolation=cv2.INTER_LINEAR)  # type: ignore[arg-type]
    labels = brand.locate(image, palette, exact={"electric_yellow": alpha}, by_colour=[])
    return image, labels, palette


def painted(provider: np.ndarray, delivered: np.ndarray, target: np.ndarray) -> int:
    changed = np.any(provider != delivered, axis=-1)
    if not changed.any():
        return 0
    near = [delta_e00(srgb_to_lab(img[changed][None])[0].astype(np.float64), target[None]) <= 2.0 for img in
            (delivered, provider)]  # fmt: skip
    return int((near[0] & ~near[1]).sum())


def stats(values: list[float | None]) -> dict[str, float | int | None]:
    known = [v for v in values if v is not None]
    return {
        "n": len(values),
        "none": len(values) - len(known),
        "min": round(min(known), 3) if known else None,
        "median": round(statistics.median(known), 3) if known else None,
        "max": round(max(known), 3) if known else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-side", type=int, default=640, help="the provider video's long side (Veo 720p: 1280)")
    parser.add_argument("--fps", type=int, default=12, help="the delivered frame rate")
    args = parser.parse_args()
    still, labels, palette = still_and_labels()
    yellow = palette.lab()[palette.names.index("electric_yellow")]
    buf = io.BytesIO()
    Image.fromarray(still).save(buf, format="PNG")
    n = DURATION_S * args.fps
    out: dict[str, object] = {
        "python": platform.python_version(),
        "size": SIZE,
        "provider_long_side": args.long_side,
        "fps": args.fps,
        "frames": n,
        "clips": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-brand-alignment-"))
    for motion in VIDEO_MOTIONS:
        path = tmp / f"{motion}.mp4"
        path.write_bytes(render_mp4(video_size_for(SIZE, args.long_side), DURATION_S, buf.getvalue(), motion))
        clip = HostedClip(segments=[path], fps=args.fps, n_frames=n, size=SIZE)
        started = time.perf_counter()
        clip.estimate_warps(still)
        ecc_s = time.perf_counter() - started  # the ECC pass alone, as before this change
        clip = HostedClip(segments=[path], fps=args.fps, n_frames=n, size=SIZE)
        started = time.perf_counter()
        clip.estimate_warps(still, labels, palette)  # the same pass with the per-frame verification
        verify_s = time.perf_counter() - started - ecc_s
        aligned = clip.alignment
        assert aligned is not None
        provider = list(clip.frames())
        delivered = brand.restore_frames(clip.frames(), clip.verified_labels(labels, aligned), [palette] * n)
        naive = brand.restore_frames(clip.frames(), clip.labels(labels), [palette] * n)  # the warp trusted
        lost = set(aligned.lost_frames)
        outside, ghost, corrected = 0, 0, 0
        for i, (p, d, g) in enumerate(zip(provider, delivered, naive, strict=True), start=1):
            if i in lost:
                outside += painted(p, d, yellow)
                ghost += painted(p, g, yellow)
            else:
                corrected += int(np.any(p != d, axis=-1).sum())
        groups = {"verified": [v for i, v in enumerate(aligned.frames, 1) if i not in lost],
                  "lost": [v for i, v in enumerate(aligned.frames, 1) if i in lost]}  # fmt: skip
        row = {
            "frames_lost": aligned.summary()["frames_lost"],
            "n_lost": len(lost),
            "brand_px_painted_outside_verified_alignment": outside,
            "brand_px_painted_there_if_the_warp_were_trusted": ghost,
            "px_corrected_in_verified_frames": corrected,
            "ecc_s_per_frame": round(ecc_s / n, 4),
            "verify_s_per_frame": round(verify_s / n, 4),
        }
        for name, frames in groups.items():
            row[name] = {
                "correlation": stats([v.correlation for v in frames]),
                "presence_min": stats([min((r.present for r in v.regions), default=None) for v in frames]),  # type: ignore[type-var]
                "stray": stats([v.stray for v in frames]),
            }
        out["clips"][motion] = row  # type: ignore[index]
        print(motion, json.dumps(row))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
