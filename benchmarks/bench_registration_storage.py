"""Registration throughput of the campaign folder sensor on SQLite vs PostgreSQL (issue #13).

Registering a new campaign is one partition and six slice observations; on SQLite each observation is a
fresh connection to two database files and two commits. This measures, in the same run and on the same
generated campaigns, back-to-back ``sync_campaigns`` ticks (20 s budget) until N campaigns are registered,
on the repo's SQLite ``dagster.yaml`` and on a local PostgreSQL (the rehearsal's server, dagster-postgres
storage), and reports campaigns per second and the ratio.

    python benchmarks/bench_registration_storage.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from media_routes.defs.campaign_sync import TickBudget, sync_campaigns
from media_routes.spec_index import forget_process_memory
from media_routes.testing import rehearsal
from media_routes.testing.campaigns import FAST, write_many

REPO = Path(__file__).resolve().parent.parent


def register_all(instance: dg.DagsterInstance, campaigns: Path) -> dict[str, Any]:
    forget_process_memory()
    ticks: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    observations = 0
    while True:
        t = time.perf_counter()
        report = sync_campaigns(instance, campaigns, budget=TickBudget(seconds=20.0))
        ticks.append(time.perf_counter() - t)
        observations += sum(len(v) for v in report.observations.values())
        if not report.pending:
            break
    total = time.perf_counter() - started
    n = len(instance.get_dynamic_partitions("campaign"))
    return {
        "registered": n,
        "ticks": len(ticks),
        "longest_tick_s": round(max(ticks), 2),
        "total_s": round(total, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "campaigns_per_s": round(n / total, 2),
        "ms_per_observation_wall": round(1000 * total / max(observations, 1), 1),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_registration_storage.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-registration-"))
    results: dict[str, Any] = {"n": args.n}
    try:
        for name in ("sqlite", "postgres"):
            campaigns = work / name / "campaigns"
            campaigns.mkdir(parents=True)
            write_many(campaigns, args.n, **FAST)
            time.sleep(2.5)  # past the index's racy window, as a drop copied a while before the tick
            home = work / name / "home"
            home.mkdir()
            if name == "sqlite":
                shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
                os.environ["DAGSTER_HOME"] = str(home)
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    results[name] = register_all(instance, campaigns)
            else:
                with rehearsal.postgres(work) as pg:
                    (home / "dagster.yaml").write_text(
                        "storage:\n  postgres:\n    postgres_url: " + pg.url(rehearsal.PG_DB) + "\n"
                    )
                    with dg.DagsterInstance.from_config(str(home)) as instance:
                        results[name] = register_all(instance, campaigns)
            print(name, json.dumps(results[name]), flush=True)
        results["postgres_over_sqlite_throughput"] = round(
            results["postgres"]["campaigns_per_s"] / results["sqlite"]["campaigns_per_s"], 2
        )
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
