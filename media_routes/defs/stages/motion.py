"""Stage 6 asset: image-to-video, a camera move over the delivered still, encoded H.264 MP4."""

from collections.abc import Iterator

import dagster as dg
import numpy as np

from media_routes.defs.partitions import campaign_x_format_partitions
from media_routes.defs.resources import CampaignCatalog, MediaStore, file_sha256
from media_routes.defs.stages.common import StageConfig, begin_stage, stage_asset
from media_routes.engine.motion import encode_mp4, probe_mp4, render_frames
from media_routes.formats import get_format
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@stage_asset(
    partitions_def=campaign_x_format_partitions,
    code_version=CODE_VERSION,
    kinds={"python", "opencv", "video"},
    description=(
        "Stage 6 (per campaign x format): a camera move (push-in, pull-out, pan, or parallax using the "
        "subject mask) over the delivered still with sub-pixel warps, at the spec's duration and fps (default "
        "10 s at 24 fps) and the format's video size, encoded H.264 yuv420p MP4 with faststart via PyAV. "
        "Hosted routes later: Veo, Kling."
    ),
)
def motion(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    aspect_outpaint: MediaRef,
) -> dg.Output[MediaRef]:
    run = begin_stage(context, "motion", CODE_VERSION, config, campaigns, media_store)
    fmt = get_format(str(run.format_key))
    m = run.campaign.spec.motion
    n_frames = round(m.duration_s * m.fps)
    frames = render_frames(  # deterministic camera move: the seed is not used
        run.load(aspect_outpaint.uri),
        fmt.video,
        duration_s=m.duration_s,
        fps=m.fps,
        camera=m.camera,
        strength=m.strength,
        subject_mask=run.load_layer(aspect_outpaint, "subject_mask"),
    )
    keyframes: dict[int, np.ndarray] = {}
    wanted = {1, max(1, n_frames // 2), n_frames}

    def logged(it: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Log progress and keep the first, middle and last frames for the preview strip."""
        step = max(1, n_frames // 4)
        for i, frame in enumerate(it, start=1):
            if i in wanted:
                keyframes[i] = frame.copy()
            if i % step == 0 or i == n_frames:
                context.log.info(f"motion {fmt.key}: frame {i}/{n_frames}")
            yield frame

    tmp = media_store.scratch_dir() / f"{context.run.run_id}-{run.campaign.id}-{fmt.key}.mp4"
    stats = encode_mp4(logged(frames), tmp, fps=m.fps, size=fmt.video, crf=m.crf)
    probe = probe_mp4(tmp)
    sha = file_sha256(tmp)
    uri = media_store.put_file(tmp, prefix=run.prefix, ext="mp4", sha256=sha)
    w, h = fmt.video
    ref = MediaRef(
        uri=uri,
        sha256=sha,
        kind="video",
        width=w,
        height=h,
        info={"format": fmt.key, "fps": m.fps, "frames": probe["frames"], "duration_s": probe["duration_s"]},
    )
    return run.output(
        ref,
        inputs={"aspect_outpaint": aspect_outpaint.sha256},
        preview=np.concatenate([keyframes[i] for i in sorted(keyframes)], axis=1),
        metrics={"camera": m.camera, "strength": m.strength, "preservation": m.preservation, **stats, **probe},
        extra={
            "duration_s": float(probe["duration_s"]),
            "fps": m.fps,
            "frames": int(probe["frames"]),
            "codec": str(probe["codec"]),
            "video_size": f"{w}x{h}",
        },
    )
