"""Dagster overhead: the full demo through Dagster against the same image work as plain functions.

    python benchmarks/bench_pipeline_overhead.py [--repeat N] [--campaign ID ...]

Three measurements, in the same process, on the example campaigns and every format they deliver:

* ``engine``: the six local-engine functions called directly (compose, iterate, apply_fixes, upscale,
  outpaint, render_frames + encode_mp4), outputs kept in memory except the video, which is encoded
  to a temporary file as it must be;
* ``engine+io``: the same plus what any implementation has to write: every stage output and layer
  encoded as PNG (sRGB ICC) and written to disk, the MP4 kept;
* ``dagster``: the demo's runs (``media_routes.pipeline``), one Dagster run per campaign and per
  campaign x format, on a fresh SQLite instance and media store: event log, IO manager,
  content-addressed store, metadata and thumbnails included. Deliverable export is not included.
* ``in_stage_compute``: the sum of the stage bodies' own wall time (``compute_s`` in each
  materialization's metadata) in that Dagster pass: everything a stage does, quality work included.

Since the stages also run the quality work (brand colour lock on every still and frame, decoded-video
measurement, hand-off drift), which the plain-function passes do not, the orchestration overhead is
``dagster / in_stage_compute``: Dagster's wall time over the work done inside the stages. The
ratios ``dagster / engine+io`` and ``dagster / engine`` are kept for reference. Runs are
interleaved (engine, engine+io, dagster, repeated) and the median of each is reported, so machine
noise hits all three alike. Results go to ``benchmarks/results/bench_pipeline_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from media_routes.engine.aspect_outpaint import outpaint  # noqa: E402
from media_routes.engine.base_composition import compose  # noqa: E402
from media_routes.engine.inpaint_fix import apply_fixes  # noqa: E402
from media_routes.engine.k_upscale import upscale  # noqa: E402
from media_routes.engine.lighting_iteration import iterate  # noqa: E402
from media_routes.engine.motion import encode_mp4, render_frames  # noqa: E402
from media_routes.formats import K_LEVEL_LONG_SIDE, get_format  # noqa: E402
from media_routes.lib.imaging import encode_png  # noqa: E402
from media_routes.spec import Campaign, load_all  # noqa: E402


def bare(campaigns: list[Campaign], write: bool) -> float:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def save(name: str, img) -> None:  # type: ignore[no-untyped-def]
            if write:
                (out / f"{name}.png").write_bytes(encode_png(img))

        for c in campaigns:
            s = c.spec
            base = compose(c, seed=s.seed)
            save(f"{c.id}-base", base.image)
            save(f"{c.id}-mask", base.subject_mask)
            lit = iterate(base.image, s.lighting)
            save(f"{c.id}-light", lit.image)
            fixed = apply_fixes(lit.image, c, seed=s.seed)
            save(f"{c.id}-fix", fixed.image)
            for layer in fixed.layers:
                save(f"{c.id}-fix-{layer.name}", layer.rgba)
            up = upscale(
                fixed.image,
                K_LEVEL_LONG_SIDE[s.upscale.target],
                detail=s.upscale.detail,
                skin_guard=s.upscale.skin_guard,
                subject_mask=base.subject_mask,
            )
            save(f"{c.id}-up", up.image)
            if up.subject_mask is not None:
                save(f"{c.id}-up-mask", up.subject_mask)
            for f in s.formats:
                fmt = get_format(f)
                op = outpaint(
                    up.image,
                    fmt.aspect,
                    fmt.still_size(s.upscale.target),
                    anchor=s.outpaint.anchor,
                    seed=s.seed,
                    subject_mask=up.subject_mask,
                )
                save(f"{c.id}-{f}-canvas", op.canvas)
                save(f"{c.id}-{f}-still", op.delivery)
                if op.subject_mask is not None:
                    save(f"{c.id}-{f}-mask", op.subject_mask)
                m = s.motion
                frames = render_frames(
                    op.delivery,
                    fmt.video,
                    duration_s=m.duration_s,
                    fps=m.fps,
                    camera=m.camera,
                    strength=m.strength,
                    subject_mask=op.subject_mask,
                )
                encode_mp4(frames, out / f"{c.id}-{f}.mp4", fps=m.fps, size=fmt.video, crf=m.crf)
    return time.perf_counter() - started


def through_dagster(campaigns: list[Campaign], campaigns_dir: Path) -> tuple[float, float]:
    """(wall time of the demo's runs, sum of the stage bodies' own compute time from their metadata)."""
    import dagster as dg

    from media_routes.definitions import build_resources
    from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns
    from media_routes.stages import STAGES

    with tempfile.TemporaryDirectory() as media, dg.instance_for_test() as instance:
        resources = build_resources(campaigns_dir=str(campaigns_dir), media_root=media)
        started = time.perf_counter()
        register_campaigns(instance, [c.id for c in campaigns])
        for c in campaigns:
            for run in plan_runs(c.id, c.spec.formats):
                assert materialize_stages(instance, resources, run.stages, run.partition).success
        wall = time.perf_counter() - started
        compute = 0.0
        for stage in STAGES:
            for rec in instance.fetch_materializations(dg.AssetKey(stage), limit=1000).records:
                compute += float(rec.asset_materialization.metadata["compute_s"].value)
        return wall, compute


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--campaign", action="append")
    p.add_argument("--campaigns-dir", default=str(REPO / "campaigns"))
    args = p.parse_args()
    good, bad = load_all(Path(args.campaigns_dir))
    if bad:
        raise SystemExit("\n".join(map(str, bad)))
    campaigns = [c for cid, c in good.items() if not args.campaign or cid in args.campaign]
    times: dict[str, list[float]] = {"engine": [], "engine+io": [], "dagster": [], "in_stage_compute": []}
    for i in range(args.repeat):
        times["engine"].append(bare(campaigns, write=False))
        times["engine+io"].append(bare(campaigns, write=True))
        wall, compute = through_dagster(campaigns, Path(args.campaigns_dir))
        times["dagster"].append(wall)
        times["in_stage_compute"].append(compute)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "campaigns": [c.id for c in campaigns],
        "stage_materializations": sum(4 + 2 * len(c.spec.formats) for c in campaigns),
        "seconds": times,
        "median_s": med,
        "overhead_ratio_vs_in_stage_compute": round(med["dagster"] / med["in_stage_compute"], 3),
        "overhead_ratio_vs_engine_io": round(med["dagster"] / med["engine+io"], 3),
        "overhead_ratio_vs_engine": round(med["dagster"] / med["engine"], 3),
        "dagster_extra_s_per_materialization": round(
            (med["dagster"] - med["engine+io"]) / sum(4 + 2 * len(c.spec.formats) for c in campaigns), 3
        ),
    }
    out = REPO / "benchmarks" / "results" / "bench_pipeline_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':12}{'median s':>10}")
    for k, v in med.items():
        print(f"{k:12}{v:10.1f}")
    print(
        f"overhead: dagster / engine+io = {result['overhead_ratio_vs_engine_io']}, "
        f"dagster / engine = {result['overhead_ratio_vs_engine']}, "
        f"{result['dagster_extra_s_per_materialization']} s extra per stage materialization"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
