"""What a re-roll of each stage costs on hosted routes, against the naive full re-run.

    python benchmarks/bench_reroll_credits.py [--profile high-drama] [--formats 9x16 4x5]

One campaign (noir-sneaker, 2K, 10 s motion at 3 fps) on a hosted profile, every provider replaced by
its contract stub on 127.0.0.1 (media_routes/testing/stubs). First a full run (priced), then, for each
stage in turn, a re-roll with a new seed of that stage and what follows (``media-routes reroll``'s run
plan and tags). For each re-roll: the credits the ledger recorded, the provider calls the stubs saw, and
the naive cost (the whole pipeline again). Credits come from the price table (1 credit = $0.01); the
placeholder fal prices are marked UNVERIFIED there. Results: ``benchmarks/results/bench_reroll_credits_<profile>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEYS = {
    "GEMINI_API_KEY": "bench-gemini-key",
    "FAL_KEY": "bench-id:bench-fal-secret",
    "KLING_ACCESS_KEY": "bench-kling-ak",
    "KLING_SECRET_KEY": "bench-kling-sk",
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="high-drama")
    ap.add_argument("--formats", nargs="+", default=["9x16", "4x5"])
    args = ap.parse_args()
    os.environ.update(KEYS)

    import dagster as dg

    from media_routes.credits.report import cost_report
    from media_routes.definitions import build_resources
    from media_routes.defs.providers import FalResource, GeminiResource, KlingResource, ProviderHub
    from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns
    from media_routes.stages import STAGES
    from media_routes.testing.campaigns import write_campaign
    from media_routes.testing.stubs.fal_stub import FalStub
    from media_routes.testing.stubs.google_stub import GoogleStub
    from media_routes.testing.stubs.kling_stub import KlingStub

    with (
        tempfile.TemporaryDirectory(prefix="bench-reroll-") as tmp,
        GoogleStub(api_key=KEYS["GEMINI_API_KEY"]) as google,
        FalStub(api_key=KEYS["FAL_KEY"]) as fal,
        KlingStub(access_key=KEYS["KLING_ACCESS_KEY"], secret_key=KEYS["KLING_SECRET_KEY"]) as kling,
        dg.instance_for_test() as instance,
    ):
        root = Path(tmp)
        (root / "campaigns").mkdir()
        write_campaign(
            root / "campaigns", "noir-sneaker", "shoe", formats=args.formats, upscale={"target": "2K"},
            motion={"duration_s": 10.0, "fps": 3}, route={"profile": args.profile},
        )  # fmt: skip
        resources: dict[str, Any] = build_resources(
            campaigns_dir=str(root / "campaigns"), media_root=str(root / "media"), state_dir=str(root / "credits")
        )
        hub = ProviderHub(
            gemini=GeminiResource(api_key=dg.EnvVar("GEMINI_API_KEY"), base_url=google.url, poll_interval_s=0.05),
            fal=FalResource(api_key=dg.EnvVar("FAL_KEY"), queue_url=fal.url, base_url=fal.url, poll_interval_s=0.05),
            kling=KlingResource(
                access_key=dg.EnvVar("KLING_ACCESS_KEY"),
                secret_key=dg.EnvVar("KLING_SECRET_KEY"),
                base_url=kling.url,
                poll_interval_s=0.05,
            ),
            state_dir=str(root / "credits"),
        )
        resources["providers"] = hub
        ledger = hub.ledger()

        def calls() -> int:
            return (
                google.calls("generateContent")
                + google.calls("predictLongRunning")
                + fal.calls("submit")
                + kling.calls("create")
            )

        def run(from_stage: str, seed: int | None, tags: dict[str, str]) -> None:
            for planned in plan_runs("shoe", args.formats, from_stage=from_stage):
                seeds = {from_stage: seed} if seed is not None and from_stage in planned.stages else None
                summary = materialize_stages(
                    instance, resources, planned.stages, planned.partition, seeds=seeds, tags=tags
                )
                assert summary.success, planned

        register_campaigns(instance, ["shoe"])
        run("base_composition", None, {"media_routes/command": "bench-first-run"})
        full = ledger.spent("shoe")
        rows = []
        for i, stage in enumerate(STAGES):
            before_credits, before_calls = ledger.spent("shoe"), calls()
            run(stage, 1000 + i, {"media_routes/command": "reroll", "media_routes/reroll_stage": stage,
                                  "media_routes/seed": str(1000 + i)})  # fmt: skip
            paid = ledger.spent("shoe") - before_credits
            rows.append(
                {
                    "reroll": stage,
                    "re_materialized": STAGES[i:],
                    "credits": round(paid, 4),
                    "provider_calls": calls() - before_calls,
                    "naive_credits": round(full, 4),
                    "share_of_naive": round(paid / full, 4) if full else None,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        report = cost_report(ledger, instance, "shoe")
        out = {
            "profile": args.profile,
            "formats": args.formats,
            "full_run_credits": round(full, 4),
            "rerolls": rows,
            "saved_vs_naive_credits": round(report.saved_vs_naive, 4),
            "cache_hit_rate": report.hit_rate,
        }
    print(json.dumps(out, indent=2))
    (REPO / "benchmarks" / "results" / f"bench_reroll_credits_{args.profile}.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
