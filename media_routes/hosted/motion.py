"""Hosted motion: image-to-video on Kling (5/10 s per call) or Veo (4/6/8 s per call).

A duration no single call makes is chained: the next call starts from the last decoded frame of the
previous one, and the joined clip is trimmed to the spec's duration (``router.segments_for`` picks the
calls). Frames are resampled to the spec's fps and resized to the format's video size, then the stage
restores and measures brand colours per frame as for the local route. The camera move of a hosted video
is unknown, so the still's brand-colour map is carried into each frame by an affine warp estimated with
OpenCV's ECC alignment (still -> frame), computed once per clip, with its correlation per frame. The warp is not
trusted blindly: :meth:`HostedClip.estimate_warps` also checks every frame (the ECC correlation, and whether the
brand colours are in the provider's own pixels where the warped map puts them, ``quality.alignment``), and brand
colour is restored only in the regions of the frames where both hold; the other frames stay as the provider made
them and are named by the stage's brand check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from media_routes.credits.ledger import Units
from media_routes.engine.motion import decode_frames
from media_routes.hosted.common import HostedStage, fit, png
from media_routes.lib.imaging import sha256_hex
from media_routes.model_cards import CARDS
from media_routes.providers import receipts
from media_routes.quality.alignment import ClipAlignment, keep_verified, stray_baseline, verify_frame
from media_routes.quality.brand import Palette
from media_routes.routing.router import segments_for
from media_routes.spec import Motion

ECC_WIDTH = 320
CAMERA_WORDS = {
    "push_in": "a slow push-in toward the subject",
    "pull_out": "a slow pull-out revealing the scene",
    "pan_left": "a slow pan to the left",
    "pan_right": "a slow pan to the right",
    "parallax": "a gentle parallax move, subject separating from the background",
}


def _fps_of(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 24
        return float(rate)


@dataclass
class HostedClip:
    segments: list[Path]
    fps: int
    n_frames: int
    size: tuple[int, int]
    info: dict[str, object] = field(default_factory=dict)
    warps: list[np.ndarray] = field(default_factory=list)
    correlations: list[float | None] = field(default_factory=list)  # ECC correlation per frame; None: no convergence
    alignment: ClipAlignment | None = None  # per-frame verification of the brand (estimate_warps with a brand map)

    def frames(self) -> Iterator[np.ndarray]:
        """The joined clip at ``fps``, ``n_frames`` long (the last frame held if the clip is short), at ``size``."""
        native = _fps_of(self.segments[0])
        last: np.ndarray | None = None
        j = 0
        k = 0
        for s, seg in enumerate(self.segments):
            for i, frame in enumerate(decode_frames(seg)):
                if s > 0 and i == 0:
                    continue  # the first frame of a chained call repeats the previous call's last frame
                while j < self.n_frames and round(j * native / self.fps) <= k:
                    last = fit(frame, self.size)
                    yield last
                    j += 1
                k += 1
                if j >= self.n_frames:
                    return
        while last is not None and j < self.n_frames:
            yield last
            j += 1

    def estimate_warps(
        self, still: np.ndarray, still_labels: np.ndarray | None = None, palette: Palette | None = None
    ) -> None:
        """One affine warp per output frame (frame coordinates -> still coordinates) by ECC alignment, with its
        correlation. With the still's brand map (``still_labels``, ``palette``), each frame is verified in the same
        pass (``quality.alignment.verify_frame``: is the warp trusted, and is the brand in the provider's pixels where
        the warped map puts it?), before any correction: :attr:`alignment`."""
        w, h = self.size
        s = ECC_WIDTH / w
        small = (ECC_WIDTH, max(8, round(h * s)))
        ref = cv2.cvtColor(fit(fit(still, self.size), small), cv2.COLOR_RGB2GRAY).astype(np.float32)
        base_labels = baseline = None
        if still_labels is not None and palette is not None:
            base_labels = cv2.resize(still_labels, self.size, interpolation=cv2.INTER_NEAREST)
            baseline = stray_baseline(fit(still, self.size), base_labels, palette)
        verdicts = []
        warp = np.eye(2, 3, dtype=np.float32)
        failures = 0
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
        for frame in self.frames():
            gray = cv2.cvtColor(fit(frame, small), cv2.COLOR_RGB2GRAY).astype(np.float32)
            correlation: float | None
            try:
                # the stubs want a mask array when gaussFiltSize is given; OpenCV takes None (no mask)
                correlation, warp = cv2.findTransformECC(gray, ref, warp.copy(), cv2.MOTION_AFFINE, criteria, None, 5)  # type: ignore[call-overload]
                correlation = float(correlation)
            except cv2.error:
                failures += 1  # keep the previous warp (and trust it in no frame: no correlation)
                correlation = None
            full = warp.astype(np.float64).copy()
            full[:, 2] /= s
            self.warps.append(full)
            self.correlations.append(correlation)
            if base_labels is not None and palette is not None and baseline is not None:
                warped = cv2.warpAffine(base_labels, full, self.size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
                verdicts.append(verify_frame(frame, warped, palette, correlation, baseline, full))
        self.info["ecc_failures"] = failures
        if base_labels is not None:
            self.alignment = ClipAlignment(tuple(verdicts))

    def verified_labels(self, still_labels: np.ndarray, aligned: ClipAlignment) -> Iterator[np.ndarray]:
        """The warped label map of each frame reduced to the brand regions ``aligned`` verified in that frame (all
        zero in a frame not verified), for restoring and measuring brand colour only there."""
        for warped, verdict in zip(self.labels(still_labels), aligned.frames, strict=False):
            yield keep_verified(warped, verdict)

    def labels(self, still_labels: np.ndarray) -> Iterator[np.ndarray]:
        base = cv2.resize(still_labels, self.size, interpolation=cv2.INTER_NEAREST)
        for m in self.warps:
            yield cv2.warpAffine(base, m, self.size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)


def _last_frame(path: Path) -> np.ndarray:
    last = None
    for last in decode_frames(path):  # noqa: B007
        pass
    if last is None:
        raise ValueError(f"{path.name}: the provider's video has no frames")
    return last


def animate_hosted(
    stage: HostedStage,
    still: np.ndarray,
    motion: Motion,
    size: tuple[int, int],
    aspect: str,
    scratch: Path,
    labels: np.ndarray | None = None,
    palette: Palette | None = None,
) -> HostedClip:
    """The provider's clip, joined and resampled, with its warps and (given the still's brand map ``labels``) the
    per-frame verification of the brand (:attr:`HostedClip.alignment`)."""
    cand = stage.cand
    segs = segments_for(motion.duration_s, CARDS[cand.route].video_durations_s, chain=True) or []
    prompt = stage.styled(
        f"{CAMERA_WORDS[motion.camera]}. "
        + (
            "Keep the subject, the text, the logo and every colour exactly as in the image; no new objects."
            if motion.preservation == "strict"
            else "Stay faithful to the image."
        )
    )
    paths: list[Path] = []
    start = still
    for n, seconds in enumerate(segs):
        frame_png = png(start)
        if cand.provider == "kling":
            client = stage.hub.kling.client()

            def call(c=client, p=frame_png, d=seconds, r=stage.hub.kling) -> bytes:
                # an earlier attempt's task (timed out, killed, download failed) is waited on, not paid again
                task = receipts.submit_or_resume(
                    lambda: c.image_to_video(p, prompt=prompt, model_name=cand.model, duration=str(d))
                )
                done = c.wait(task, poll_interval_s=r.poll_interval_s, timeout_s=r.video_timeout_s, model=cand.model)
                return c.video_bytes(done, model=cand.model)
        else:
            client = stage.hub.gemini.veo_client()

            def call(c=client, p=frame_png, d=seconds, r=stage.hub.gemini) -> bytes:
                name = receipts.submit_or_resume(
                    lambda: c.start(prompt, model=cand.model, image_png=p, duration_s=d, aspect_ratio=aspect)
                )
                return c.video_bytes(c.wait(name, poll_interval_s=r.poll_interval_s, timeout_s=r.video_timeout_s))

        with client:
            data = stage.calls.call(
                cand,
                op=f"image_to_video[{n}]",
                params={"prompt": prompt, "duration_s": seconds, "aspect_ratio": aspect},
                inputs={"image": sha256_hex(frame_png)},
                # neither Veo (Gemini API) nor Kling takes a seed; it is in the call key anyway so that a
                # re-roll (a new seed) asks for a new sample instead of hitting the cache
                seed=stage.seed,
                units=Units(video_seconds=seconds),
                fn=call,
            )
        path = scratch / f"{stage.calls.run_id}-{stage.campaign.id}-{stage.calls.format_key}-provider-{n}.mp4"
        path.write_bytes(data)
        paths.append(path)
        if n + 1 < len(segs):
            start = _last_frame(path)
    clip = HostedClip(
        segments=paths,
        fps=motion.fps,
        n_frames=round(motion.duration_s * motion.fps),
        size=size,
        info={"segments_s": segs, "prompt": prompt, "native_fps": _fps_of(paths[0])},
    )
    clip.estimate_warps(still, labels, palette)
    return clip
