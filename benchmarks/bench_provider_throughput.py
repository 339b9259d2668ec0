"""Provider throughput under a concurrency limit: a backfill of campaign x format partitions on a hosted
route against a stub with a fixed latency.

    python benchmarks/bench_provider_throughput.py [--campaigns 6] [--latency 6] [--limit 2] [--workers 5]

Setup (not timed): ``--campaigns`` copies of the noir-sneaker example with every format (4 each, so 24
partitions by default), stages 1-4 on the local engine at 2K, and ``aspect_outpaint`` routed to
``fal/fal-ai/bria/expand``. The fal stub (``media_routes/testing/stubs/fal_stub.py``, real sockets on
127.0.0.1) keeps every job IN_PROGRESS for ``--latency`` seconds. The provider resource allows
``--limit`` concurrent fal jobs (the slots shared across processes, ``providers/slots.py``).

Backfill (timed): ``--workers`` processes take partitions from a queue, each partition one Dagster run
of ``aspect_outpaint`` on a shared SQLite instance (as the daemon's run workers would). Reported:

* ``efficiency`` = theoretical provider time (calls x latency / limit) / measured provider phase (first
  submit to last result, as the stub saw them): 1.0 means the slots were never idle;
* ``peak_in_flight``: the most jobs the stub had in flight at once (a breach is any value over the limit);
* the whole backfill's wall time and the per-partition run time.

Results go to ``benchmarks/results/bench_provider_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FAL_KEY = "bench-id:bench-secret-0123456789"


def _hub(state: Path, fal_url: str, limit: int) -> Any:
    from media_routes.defs.providers import FalResource, GeminiResource, KlingResource, ProviderHub

    return ProviderHub(
        gemini=GeminiResource(),
        fal=FalResource(
            api_key=FAL_KEY, queue_url=fal_url, base_url=fal_url, poll_interval_s=0.05, max_concurrent=limit
        ),
        kling=KlingResource(),
        state_dir=str(state),
    )


def _resources(root: Path, fal_url: str, limit: int) -> dict[str, Any]:
    from media_routes.definitions import build_resources

    res: dict[str, Any] = build_resources(
        campaigns_dir=str(root / "campaigns"), media_root=str(root / "media"), state_dir=str(root / "credits")
    )
    res["providers"] = _hub(root / "credits", fal_url, limit)
    return res


def _worker(root: str, fal_url: str, limit: int, queue: Any, results: Any) -> None:
    import dagster as dg

    from media_routes.pipeline import materialize_stages

    os.environ["DAGSTER_HOME"] = str(Path(root) / "home")
    resources = _resources(Path(root), fal_url, limit)
    instance = dg.DagsterInstance.get()
    while True:
        item = queue.get()
        if item is None:
            break
        cid, fmt = item
        t0 = time.perf_counter()
        key = dg.MultiPartitionKey({"campaign": cid, "format": fmt})
        ok = materialize_stages(instance, resources, ["aspect_outpaint"], key, raise_on_error=False).success
        results.put((cid, fmt, ok, time.perf_counter() - t0))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--campaigns", type=int, default=6)
    ap.add_argument("--latency", type=float, default=6.0)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--workers", type=int, default=5)
    args = ap.parse_args()

    import dagster as dg

    from media_routes.formats import FORMAT_KEYS
    from media_routes.pipeline import materialize_stages, register_campaigns
    from media_routes.testing.campaigns import write_campaign
    from media_routes.testing.stubs.fal_stub import FalStub

    with (
        tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp,
        FalStub(api_key=FAL_KEY, job_seconds=args.latency, queue_polls=0, progress_polls=0) as stub,
    ):
        root = Path(tmp)
        (root / "campaigns").mkdir()
        (root / "home").mkdir()
        os.environ["DAGSTER_HOME"] = str(root / "home")
        ids = [f"bench-{i}" for i in range(args.campaigns)]
        for cid in ids:
            write_campaign(
                root / "campaigns", "noir-sneaker", cid, formats=FORMAT_KEYS, upscale={"target": "2K"},
                route={"profile": "local", "aspect_outpaint": "fal/fal-ai/bria/expand"},
                seed=hash(cid) % 1000,  # distinct inputs: every partition is a distinct (paid) call
            )  # fmt: skip
        resources = _resources(root, stub.url, args.limit)
        instance = dg.DagsterInstance.get()
        register_campaigns(instance, ids)
        t0 = time.perf_counter()
        for cid in ids:
            assert materialize_stages(instance, resources, ["base_composition", "lighting_iteration", "inpaint_fix",
                                                             "k_upscale"], cid).success  # fmt: skip
        setup_s = time.perf_counter() - t0
        print(f"setup: stages 1-4 for {len(ids)} campaigns in {setup_s:.1f} s", flush=True)

        ctx = mp.get_context("spawn")
        queue, results = ctx.Queue(), ctx.Queue()
        partitions = [(cid, fmt) for cid in ids for fmt in FORMAT_KEYS]
        for p in partitions:
            queue.put(p)
        for _ in range(args.workers):
            queue.put(None)
        t0 = time.perf_counter()
        procs = [
            ctx.Process(target=_worker, args=(str(root), stub.url, args.limit, queue, results))
            for _ in range(args.workers)
        ]
        for p in procs:
            p.start()
        done = [results.get(timeout=1800) for _ in partitions]
        for p in procs:
            p.join(timeout=60)
        wall = time.perf_counter() - t0

        intervals = sorted(stub.job_intervals())
        events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        peak = cur = 0
        for _, d in events:
            cur += d
            peak = max(peak, cur)
        provider_phase = max(e for _, e in intervals) - min(s for s, _ in intervals)
        theoretical = len(intervals) * args.latency / args.limit
        failed = [d for d in done if not d[2]]
        report = {
            "partitions": len(partitions),
            "succeeded": len(partitions) - len(failed),
            "provider_calls": len(intervals),
            "latency_s": args.latency,
            "limit": args.limit,
            "workers": args.workers,
            "theoretical_provider_s": round(theoretical, 2),
            "measured_provider_phase_s": round(provider_phase, 2),
            "efficiency": round(theoretical / provider_phase, 4),
            "peak_in_flight": peak,
            "breaches": int(peak > args.limit),
            "backfill_wall_s": round(wall, 2),
            "median_partition_run_s": round(sorted(d[3] for d in done)[len(done) // 2], 2),
            "setup_s": round(setup_s, 1),
            "cpu_count": os.cpu_count(),
        }
    print(json.dumps(report, indent=2))
    out = REPO / "benchmarks" / "results" / "bench_provider_throughput.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if not failed and peak <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
