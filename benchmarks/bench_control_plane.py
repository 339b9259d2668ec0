"""Control plane at team scale (issue #13): folder sensor, automation, schedule and validate at N campaigns.

    python benchmarks/bench_control_plane.py --sizes 100 1000 10000
    python benchmarks/bench_control_plane.py --daemon 1000        # real daemon ticks through a code server
    python benchmarks/bench_control_plane.py --synthetic 10000    # automation + schedule only, no history

For each N, in a fresh temp folder under ``--workdir`` (default /tmp): N campaigns generated from the two
examples (``campaign.yaml`` copies with new ids ``c00000``...; asset files hard-linked), about 10% of them with a
``refresh:`` cron (``0 6 * * 1`` Europe/Paris), and a fresh SQLite instance (the repo's ``dagster.yaml`` in a temp
``DAGSTER_HOME``). Then:

1. **first registration**: ``sync_campaigns`` ticks back to back with the production budget (20 s) until nothing
   is pending: total time, ticks, the longest tick, and the wall time the daemon would need with the sensor's 30 s
   minimum interval (a tick starts at most every 30 s: ``sum(max(30, t))`` over every tick but the last, plus the
   last);
2. **unchanged tick**, warm (the index held in the process, as in a long-lived code server) and cold (after
   ``forget_process_memory()``: the index read back from the instance);
3. a tick after **editing one spec** (``upscale.detail``);
4. a tick after **adding 10 specs**;
   (1-4 run in one subprocess, the "sensor process", whose peak RSS ``ru_maxrss`` is read after 1-2 and at the end);
5. **verification** (another subprocess): every campaign registered exactly once, every campaign with exactly one
   observation of each of its 6 spec slices (two of ``k_upscale`` for the edited one);
6. **automation**: runless materializations seeded for 10% of the campaigns (the four stills, and
   ``aspect_outpaint`` / ``motion`` for each format of the spec, each with an ``output_hash``), then ticks of the
   ``stage_automation`` sensor evaluated through its definition (``evaluate_tick``: the code path the code server
   runs for a ``use_user_code_server`` sensor) without cursor, after an edit and 10 new specs, and steady, each
   with the count of dynamic-partition reads (before 2026-12-03 this used ``dg.evaluate_automation_conditions``,
   a test helper that re-reads every partition key per condition node: ``--synthetic`` measures both);
7. **schedule**: one ``campaign_refresh`` evaluation at a time its cron fired (cold index, then warm);
8. ``media-routes validate <dir>`` in a subprocess (wall and CPU); run twice if the CLI has index support;
9. growth per N (ratio of each figure to the one at the previous size).

Every figure carries ``os.getloadavg()`` taken right after it (the machine is shared). Results go to
``benchmarks/results/bench_control_plane.json`` (``bench_control_plane_daemon.json`` for ``--daemon``) and a markdown
table is printed.

``--daemon N`` runs the production topology's code server path once: ``dagster code-server start -m
media_routes.definitions`` and ``dagster-daemon run`` on a workspace.yaml with a ``grpc_server`` entry, the
``stage_automation`` sensor STOPPED (``MEDIA_ROUTES_AUTOMATION=stopped``: nothing renders), until the
``campaign_folder_sensor`` has registered all N campaigns; then it reads the sensor's ticks from the instance (start,
end, status, the logged summary lines). Both processes are stopped at the end.

``--synthetic N`` measures automation and the schedule alone at N: N partitions added in one call and an N-entry
index (copies of the examples' parsed entries) on the on-disk SQLite instance, without any event history, for a
size whose registration through the sensor would take hours on a loaded machine. A lower bound.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "campaigns"
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent
MIN_INTERVAL_S = 30.0  # the automation sensor's minimum_interval_seconds (and the folder sensor's before 2026-12-02)
REFRESH = {"cron": "0 6 * * 1", "timezone": "Europe/Paris"}
# Monday 2026-12-07 06:02 in Paris (CET, UTC+1): the cron above fired 2 minutes earlier
SCHEDULE_TIME = dt.datetime(2026, 12, 7, 5, 2, tzinfo=dt.UTC)
EDITED = "c00000"


def folder_interval() -> float:
    from media_routes.settings import folder_sensor_interval_s

    return float(folder_sensor_interval_s())  # edited by the sensor phase (no history)


EDITED_WITH_HISTORY = "c00010"  # edited before the second automation evaluation (has history: has_history(10))
Json = dict[str, Any]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------------------------------
# Generated campaigns
# --------------------------------------------------------------------------------------------------


def campaign_id(i: int) -> str:
    return f"c{i:05d}"


def has_refresh(i: int) -> bool:
    return (i // 2) % 10 == 0  # 10%, both examples alike (they alternate)


def has_history(i: int) -> bool:
    return (i // 2) % 10 == 5  # another 10%, both examples


def generate(campaigns_dir: Path, start: int, count: int) -> list[str]:
    """``count`` campaigns ``c<start>``..., alternating the examples: own campaign.yaml, hard-linked assets."""
    from media_routes.testing.campaigns import write_many

    def edit(i: int, data: dict[str, Any]) -> None:
        if has_refresh(i):
            data["refresh"] = dict(REFRESH)

    campaigns_dir.mkdir(parents=True, exist_ok=True)
    return write_many(campaigns_dir, count, start=start, edit=edit)


def edit_one(campaigns_dir: Path, cid: str) -> None:
    path = campaigns_dir / cid / "campaign.yaml"
    data = yaml.safe_load(path.read_text())
    data["upscale"]["detail"] = round(float(data["upscale"]["detail"]) + 0.05, 2)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_home(root: Path) -> Path:
    home = root / "home"
    home.mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


def child_env(home: Path, campaigns_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(home)
    env["MEDIA_ROUTES_CAMPAIGNS_DIR"] = str(campaigns_dir)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------------
# Automation: one tick as the code server evaluates it
# --------------------------------------------------------------------------------------------------


@contextmanager
def dynamic_partition_reads() -> Iterator[list[int]]:
    """Count ``DagsterInstance.get_dynamic_partitions`` calls (each reads every ``campaign`` key from storage)."""
    from dagster._core.instance import DagsterInstance

    original = DagsterInstance.get_dynamic_partitions
    count = [0]

    def counted(self: Any, partitions_def_name: str) -> Any:
        count[0] += 1
        return original(self, partitions_def_name)

    DagsterInstance.get_dynamic_partitions = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        DagsterInstance.get_dynamic_partitions = original  # type: ignore[method-assign]


def automation_tick(defs: Any, instance: Any, cursor: str | None) -> tuple[Json, str | None]:
    """One evaluation of the ``stage_automation`` sensor through its definition, as the code server runs it
    (``use_user_code_server=True``: ``AutomationTickEvaluationContext`` under the tick's caching instance queryer).
    Returns the figures and the sensor's new serialized cursor."""
    import dagster as dg

    sensor = defs.resolve_sensor_def("stage_automation")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
    with dynamic_partition_reads() as reads, contextlib.redirect_stderr(io.StringIO()):
        wall, cpu = time.perf_counter(), time.process_time()
        data = sensor.evaluate_tick(context)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    by_asset: Counter[str] = Counter()
    for request in data.run_requests or []:
        if request.asset_graph_subset is not None:  # emit_backfills: many partitions come as one backfill request
            for asset_partition in request.asset_graph_subset.iterate_asset_partitions():
                by_asset[asset_partition.asset_key.to_user_string()] += 1
        else:
            for key in request.asset_selection or []:
                by_asset[key.to_user_string()] += 1
    figures = {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "requested": sum(by_asset.values()),
        "requested_by_asset": dict(by_asset),
        "run_requests": len(data.run_requests or []),
        "dynamic_partition_reads": reads[0],
        "path": "sensor definition (code server)",
        "load": load(),
    }
    return figures, data.cursor


def automation_tester(defs: Any, instance: Any, cursor: Any) -> tuple[Json, Any]:
    """The same evaluation through ``dg.evaluate_automation_conditions`` (Dagster's test helper): it serializes its
    cursor with the bare instance as the dynamic partitions store, so it re-reads every partition key once per
    condition node. Measured beside ``automation_tick`` to show the difference; not what the daemon runs."""
    import dagster as dg

    with dynamic_partition_reads() as reads:
        wall, cpu = time.perf_counter(), time.process_time()
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "requested": result.total_requested,
        "dynamic_partition_reads": reads[0],
        "path": "dg.evaluate_automation_conditions (test helper)",
        "load": load(),
    }
    return figures, result.cursor


# --------------------------------------------------------------------------------------------------
# Phase "sensor" (subprocess): registration, unchanged, edit, add
# --------------------------------------------------------------------------------------------------


def tick_figures(run: Callable[[], Any]) -> tuple[Any, Json]:
    wall, cpu = time.perf_counter(), time.process_time()
    report = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return report, {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "listed": report.listed,
        "stat_calls": report.stat_calls,
        "parsed": report.parsed,
        "invalid": len(report.invalid),
        "observed_slices": sum(len(v) for v in report.observations.values()),
        "observed": {k: v for k, v in list(report.observations.items())[:3]},
        "registered": len(report.registered),
        "pending": report.pending,
        "queries": report.queries,
        "parts_s": {k: round(v, 3) for k, v in report.seconds.items()},
        "load": load(),
    }


def phase_sensor(root: Path, n: int) -> Json:
    import dagster as dg

    from media_routes.defs.campaign_sync import TickBudget, sync_campaigns
    from media_routes.settings import DEFAULT_SENSOR_TICK_BUDGET_S
    from media_routes.spec_index import forget_process_memory

    campaigns_dir = root / "campaigns"
    out: Json = {}
    with dg.DagsterInstance.get() as instance:
        out["rss_peak_mb_idle"] = round(rss_peak_mb(), 1)
        budget = TickBudget(seconds=DEFAULT_SENSOR_TICK_BUDGET_S)

        def tick() -> Any:
            return sync_campaigns(instance, campaigns_dir, budget=budget)

        # 1. first registration
        ticks: list[Json] = []
        registered: list[str] = []
        started = time.perf_counter()
        while True:
            report, fig = tick_figures(tick)
            fig.pop("observed")
            ticks.append(fig)
            registered += report.registered
            print(f"  N={n} registration tick {len(ticks)}: {report.summary()}", file=sys.stderr, flush=True)
            if report.pending == 0 or len(ticks) >= 2_000:
                break
        total = time.perf_counter() - started
        walls = [t["wall_s"] for t in ticks]
        out["registration"] = {
            "total_s": round(total, 2),
            "ticks": len(ticks),
            "longest_tick_s": max(walls),
            "daemon_wall_s_at_30s_interval": round(sum(max(MIN_INTERVAL_S, w) for w in walls[:-1]) + walls[-1], 1),
            # the production folder sensor's interval (media_routes/settings.folder_sensor_interval_s)
            "folder_sensor_interval_s": folder_interval(),
            "daemon_wall_s_at_folder_interval": round(
                sum(max(folder_interval(), w) for w in walls[:-1]) + walls[-1], 1
            ),
            "registered": len(registered),
            "registered_distinct": len(set(registered)),
            "observed_slices": sum(t["observed_slices"] for t in ticks),
            "parsed": sum(t["parsed"] for t in ticks),
            "observe_ms_per_slice": round(
                1000
                * sum(t["parts_s"].get("observe", 0.0) for t in ticks)
                / max(1, sum(t["observed_slices"] for t in ticks)),
                1,
            ),
            "cpu_s": round(sum(t["cpu_s"] for t in ticks), 2),
            "per_tick": ticks,
            "load": load(),
        }

        # 2. unchanged ticks: warm (index held in the process), then cold (read back from the instance)
        out["unchanged_warm"] = tick_figures(tick)[1]
        forget_process_memory()
        out["unchanged_cold"] = tick_figures(tick)[1]
        out["rss_peak_mb_after_registration_and_unchanged"] = round(rss_peak_mb(), 1)

        # 3. one edit; 4. ten new specs (written just before: the next tick re-hashes them, racy mtime)
        edit_one(campaigns_dir, EDITED)
        out["after_edit"] = tick_figures(tick)[1]
        generate(campaigns_dir, n, 10)
        out["after_add_10"] = tick_figures(tick)[1]
        time.sleep(2.1)  # past the racy window: the next tick is a plain unchanged one again
        out["unchanged_after_changes"] = tick_figures(tick)[1]
        out["rss_peak_mb_end"] = round(rss_peak_mb(), 1)
    return out


# --------------------------------------------------------------------------------------------------
# Phase "control" (subprocess): verification, automation, schedule
# --------------------------------------------------------------------------------------------------


def _all_observations(instance: Any, stage: str) -> Counter[str]:
    import dagster as dg

    from media_routes.defs.campaign_specs import slice_key

    counts: Counter[str] = Counter()
    cursor = None
    while True:
        result = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=slice_key(stage)), limit=5_000, cursor=cursor, ascending=True
        )
        counts.update(str(r.partition_key) for r in result.records)
        cursor = result.cursor
        if not result.has_more:
            return counts


def verify(instance: Any, ids: list[str]) -> Json:
    from media_routes.stages import CAMPAIGN_DIMENSION, STAGES

    started = time.perf_counter()
    partitions = list(instance.get_dynamic_partitions(CAMPAIGN_DIMENSION))
    problems: list[str] = []
    if sorted(partitions) != sorted(ids):
        problems.append(
            f"partitions: {len(partitions)} ({len(set(partitions))} distinct), expected {len(ids)}; "
            f"missing {sorted(set(ids) - set(partitions))[:5]}, extra {sorted(set(partitions) - set(ids))[:5]}"
        )
    per_stage: Json = {}
    for stage in STAGES:
        counts = _all_observations(instance, stage)
        expected = {cid: 2 if (cid == EDITED and stage == "k_upscale") else 1 for cid in ids}
        wrong = {cid: counts.get(cid, 0) for cid in ids if counts.get(cid, 0) != expected[cid]}
        wrong |= {cid: c for cid, c in counts.items() if cid not in expected}
        per_stage[stage] = {"observations": sum(counts.values()), "campaigns": len(counts)}
        if wrong:
            problems.append(
                f"{stage}: {len(wrong)} campaigns with an unexpected number of observations, e.g. "
                f"{dict(list(wrong.items())[:5])}"
            )
    return {
        "campaigns": len(ids),
        "partitions": len(partitions),
        "partitions_distinct": len(set(partitions)),
        "observations_per_stage": per_stage,
        "ok": not problems,
        "problems": problems,
        "seconds": round(time.perf_counter() - started, 1),
    }


def seed_history(instance: Any, entries: dict[str, Any], history: list[str]) -> Json:
    import dagster as dg

    from media_routes.stages import CAMPAIGN_STAGES, FORMAT_STAGES, campaign_format_key

    started = time.perf_counter()
    events = 0
    for cid in history:
        keys = [(s, cid) for s in CAMPAIGN_STAGES]
        keys += [(s, campaign_format_key(cid, f)) for f in entries[cid].formats for s in FORMAT_STAGES]
        for stage, partition in keys:
            digest = hashlib.sha256(f"{stage}|{partition}|bench".encode()).hexdigest()
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=stage, partition=partition, metadata={"output_hash": digest})
            )
            events += 1
    return {"campaigns": len(history), "materializations": events, "seconds": round(time.perf_counter() - started, 1)}


def phase_control(root: Path, n: int) -> Json:
    import dagster as dg

    from media_routes.definitions import build_definitions
    from media_routes.defs.campaign_sync import sync_campaigns
    from media_routes.defs.resources import CampaignCatalog
    from media_routes.defs.schedules import campaign_refresh_schedule
    from media_routes.spec_index import SpecIndex, forget_process_memory

    campaigns_dir = root / "campaigns"
    ids = [campaign_id(i) for i in range(n + 10)]
    out: Json = {}
    with dg.DagsterInstance.get() as instance:
        out["verification"] = verify(instance, ids)
        entries = SpecIndex.load(instance.daemon_cursor_storage, campaigns_dir).entries
        history = [campaign_id(i) for i in range(n) if has_history(i)]
        out["history"] = seed_history(instance, entries, history)

        # schedule: cold (this process has not read the index since the seeding), then warm
        resources = {"campaigns": CampaignCatalog(campaigns_dir=str(campaigns_dir))}
        for label in ("schedule_cold", "schedule_warm"):
            if label == "schedule_cold":
                forget_process_memory()
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=SCHEDULE_TIME, resources=resources
            )
            logged = io.StringIO()
            wall, cpu = time.perf_counter(), time.process_time()
            with contextlib.redirect_stderr(logged):  # its console logger: a line per due campaign
                result = campaign_refresh_schedule(context)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            requests = result if isinstance(result, list) else []
            out[label] = {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "run_requests": len(requests),
                "log_lines": len(logged.getvalue().splitlines()),
                "summary": next((ln for ln in logged.getvalue().splitlines() if "indexed campaigns" in ln), ""),
                "expected": sum(1 for i in range(n + 10) if has_refresh(i)),  # before the 10 added below
                "load": load(),
            }

        # automation: the daemon's first evaluation (no cursor: nothing is "newly" missing or updated, so it
        # requests nothing), then one after a sensor tick that saw an edit of a campaign with history and 10 new
        # specs (with the first one's cursor: what the sensor's changes make automation request), then a steady one
        started = time.perf_counter()
        defs = build_definitions(campaigns_dir=str(campaigns_dir), media_root=str(root / "media"))
        out["definitions_s"] = round(time.perf_counter() - started, 2)
        cursor = None
        for label in ("automation_first", "automation_after_changes", "automation_steady"):
            if label == "automation_after_changes":
                edit_one(campaigns_dir, EDITED_WITH_HISTORY)
                generate(campaigns_dir, n + 10, 10)
                report = sync_campaigns(instance, campaigns_dir)
                out["changes_tick"] = {"parsed": report.parsed, "observations": report.observations}
            out[label], cursor = automation_tick(defs, instance, cursor)
            print(f"  N={n} {label}: {out[label]}", file=sys.stderr, flush=True)
        out["rss_peak_mb"] = round(rss_peak_mb(), 1)
    return out


# --------------------------------------------------------------------------------------------------
# validate (subprocess)
# --------------------------------------------------------------------------------------------------


def run_validate(env: dict[str, str], campaigns_dir: Path) -> Json:
    """``media-routes validate`` of one spec (start-up cost), then of the whole folder (twice with an index)."""
    cli = str(BIN / "media-routes")
    help_text = subprocess.run([cli, "validate", "--help"], env=env, capture_output=True, text=True).stdout
    has_index = "index" in help_text.lower()
    n_specs = sum(1 for p in campaigns_dir.iterdir() if (p / "campaign.yaml").is_file())

    def once(target: Path) -> Json:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        proc = subprocess.run([cli, "validate", str(target)], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "returncode": proc.returncode,
            "ok_lines": sum(1 for ln in proc.stdout.splitlines() if ln.startswith("ok ")),
            "load": load(),
        }

    one = once(campaigns_dir / campaign_id(1))
    runs = []
    for _ in range(2 if has_index else 1):
        run = once(campaigns_dir)
        run["cpu_ms_per_spec"] = round(1000 * run["cpu_s"] / n_specs, 2)
        run["cpu_ms_per_spec_after_startup"] = round(1000 * (run["cpu_s"] - one["cpu_s"]) / (n_specs - 1), 2)
        runs.append(run)
    return {"index_support": has_index, "specs": n_specs, "one_spec": one, "runs": runs}


# --------------------------------------------------------------------------------------------------
# One size
# --------------------------------------------------------------------------------------------------


def run_phase(phase: str, root: Path, n: int, env: dict[str, str]) -> Json:
    out_file = root / f"{phase}.json"
    cmd = [sys.executable, __file__, "--phase", phase, "--root", str(root), "--n", str(n)]
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} at N={n} failed ({proc.returncode})")
    return json.loads(out_file.read_text())


def bench_size(n: int, workdir: Path, keep: bool) -> Json:
    root = Path(tempfile.mkdtemp(prefix=f"bench_control_plane_{n}_", dir=workdir))
    campaigns_dir = root / "campaigns"
    home = make_home(root)
    env = child_env(home, campaigns_dir)
    try:
        started = time.perf_counter()
        generate(campaigns_dir, 0, n)
        result: Json = {"n": n, "generate_s": round(time.perf_counter() - started, 1), "root": str(root)}
        print(f"N={n}: generated in {result['generate_s']} s under {root}", file=sys.stderr, flush=True)
        result["sensor"] = run_phase("sensor", root, n, env)
        result["control"] = run_phase("control", root, n, env)
        result["validate"] = run_validate(env, campaigns_dir)
        du = subprocess.run(["du", "-sk", str(home)], capture_output=True, text=True).stdout.split()
        result["instance_mb"] = round(int(du[0]) / 1024, 1) if du else None
        return result
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------------


def figures(r: Json) -> dict[str, tuple[float, str, list[float] | None]]:
    """Measure -> (value, detail, load average)."""
    s, c, v = r["sensor"], r["control"], r["validate"]
    reg = s["registration"]

    def tick(t: Json) -> tuple[float, str, list[float]]:
        detail = f"CPU {t['cpu_s']}; parsed {t['parsed']}, observed {t['observed_slices']}, {t['queries']} queries"
        return t["wall_s"], detail, t["load"]

    out: dict[str, tuple[float, str, list[float] | None]] = {
        "registration total s": (
            reg["total_s"],
            f"{reg['ticks']} ticks, {reg['observed_slices']} observations, CPU {reg['cpu_s']} s",
            reg["load"],
        ),
        "registration longest tick s": (
            reg["longest_tick_s"],
            f"budget 20 s; {reg.get('observe_ms_per_slice', '?')} ms per observation write",
            reg["load"],
        ),
        "registration wall at 30 s interval s": (reg["daemon_wall_s_at_30s_interval"], "estimate", reg["load"]),
        "registration wall at the folder sensor's interval s": (
            reg.get("daemon_wall_s_at_folder_interval"),
            "estimate",
            reg["load"],
        ),
        "unchanged tick (warm index) s": tick(s["unchanged_warm"]),
        "unchanged tick (cold index) s": tick(s["unchanged_cold"]),
        "tick after 1 edit s": tick(s["after_edit"]),
        "tick after adding 10 s": tick(s["after_add_10"]),
        "automation 1st evaluation s": (
            c["automation_first"]["wall_s"],
            f"CPU {c['automation_first']['cpu_s']}; {c['automation_first']['requested']} requested",
            c["automation_first"]["load"],
        ),
        "automation after 1 edit + 10 new s": (
            c["automation_after_changes"]["wall_s"],
            f"CPU {c['automation_after_changes']['cpu_s']}; {c['automation_after_changes']['requested']} requested",
            c["automation_after_changes"]["load"],
        ),
        "automation steady s": (
            c["automation_steady"]["wall_s"],
            f"CPU {c['automation_steady']['cpu_s']}; {c['automation_steady']['requested']} requested",
            c["automation_steady"]["load"],
        ),
        "schedule tick (cold index) s": (
            c["schedule_cold"]["wall_s"],
            f"CPU {c['schedule_cold']['cpu_s']}; {c['schedule_cold']['run_requests']} run requests",
            c["schedule_cold"]["load"],
        ),
        "schedule tick (warm index) s": (
            c["schedule_warm"]["wall_s"],
            f"CPU {c['schedule_warm']['cpu_s']}; {c['schedule_warm']['run_requests']} run requests",
            c["schedule_warm"]["load"],
        ),
    }
    for i, run in enumerate(v["runs"]):
        name = "validate" if i == 0 else "validate (2nd run)"
        detail = f"{run['cpu_ms_per_spec_after_startup']} ms/spec after start-up, rc {run['returncode']}"
        out[f"{name} CPU s"] = (run["cpu_s"], detail, run["load"])
        out[f"{name} wall s"] = (run["wall_s"], "", run["load"])
    out["sensor process peak RSS MB"] = (
        s["rss_peak_mb_after_registration_and_unchanged"],
        f"idle {s['rss_peak_mb_idle']}, end {s['rss_peak_mb_end']}",
        None,
    )
    out["verification"] = (1.0 if c["verification"]["ok"] else 0.0, "ok" if c["verification"]["ok"] else "FAILED", None)
    return out


def growth(results: list[Json]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for prev, cur in zip(results, results[1:], strict=False):
        label = f"{cur['n']}/{prev['n']}"
        fp, fc = figures(prev), figures(cur)
        out[label] = {k: (round(fc[k][0] / fp[k][0], 2) if fp[k][0] else None) for k in fc if k in fp}
    return out


def table(results: list[Json]) -> str:
    sizes = [r["n"] for r in results]
    figs = [figures(r) for r in results]
    grow = growth(results)
    head = ["measure", *[f"N = {n:,}" for n in sizes], *[f"x {k}" for k in grow]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in figs[0]:
        cells = [key]
        for f in figs:
            value, detail, la = f.get(key, (float("nan"), "", None))
            cell = f"{value:g}"
            if detail:
                cell += f" ({detail})"
            if la is not None:
                cell += f" [load {la[0]:.1f}]"
            cells.append(cell)
        cells += [f"{g.get(key)}" if g.get(key) is not None else "-" for g in grow.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# --synthetic N (subprocess): automation and schedule at N without registering N campaigns first
# --------------------------------------------------------------------------------------------------


def phase_synthetic(root: Path, n: int) -> Json:
    """N dynamic partitions added in one call and an N-entry index (copies of the two examples' parsed entries,
    synced, 10% with a refresh), on the on-disk SQLite instance, but no event history (no observation, no
    materialization): what automation and the schedule cost at N when registering N through the sensor would
    take too long. A lower bound for the real evaluation (which also reads the history)."""
    from dataclasses import replace

    import dagster as dg

    from media_routes.definitions import build_definitions
    from media_routes.defs.resources import CampaignCatalog
    from media_routes.defs.schedules import campaign_refresh_schedule
    from media_routes.spec_index import SpecIndex, forget_process_memory, parse_entry
    from media_routes.stages import CAMPAIGN_DIMENSION

    campaigns_dir = root / "campaigns"
    campaigns_dir.mkdir(exist_ok=True)
    sources = sorted(p for p in EXAMPLES.iterdir() if (p / "campaign.yaml").is_file())
    parsed = [parse_entry(src) for src in sources]
    refresh = {**REFRESH, "new_seed": False}
    ids = [campaign_id(i) for i in range(n)]
    entries = {
        cid: replace(parsed[i % len(parsed)], campaign=cid, synced=True, refresh=refresh if has_refresh(i) else None)
        for i, cid in enumerate(ids)
    }
    out: Json = {"n": n, "history": "none"}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(CAMPAIGN_DIMENSION, ids)
        SpecIndex(campaigns_dir, entries).save(instance.daemon_cursor_storage, ids)
        defs = build_definitions(campaigns_dir=str(campaigns_dir), media_root=str(root / "media"))
        cursor: str | None = None
        tester_cursor: Any = None
        for label in ("automation_first", "automation_second"):
            out[label], cursor = automation_tick(defs, instance, cursor)
            print(f"  synthetic N={n} {label}: {out[label]}", file=sys.stderr, flush=True)
            out[f"{label}_test_helper"], tester_cursor = automation_tester(defs, instance, tester_cursor)
            print(f"  synthetic N={n} {label}_test_helper: {out[label + '_test_helper']}", file=sys.stderr, flush=True)
        forget_process_memory()
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=SCHEDULE_TIME,
            resources={"campaigns": CampaignCatalog(campaigns_dir=str(campaigns_dir))},
        )
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stderr(io.StringIO()):
            result = campaign_refresh_schedule(context)
        out["schedule_cold"] = {
            "wall_s": round(time.perf_counter() - wall, 3),
            "cpu_s": round(time.process_time() - cpu, 3),
            "run_requests": len(result) if isinstance(result, list) else 0,
            "load": load(),
        }
        out["rss_peak_mb"] = round(rss_peak_mb(), 1)
    return out


def bench_synthetic(n: int, workdir: Path, keep: bool) -> Json:
    root = Path(tempfile.mkdtemp(prefix=f"bench_control_plane_synthetic_{n}_", dir=workdir))
    home = make_home(root)
    try:
        return run_phase("synthetic", root, n, child_env(home, root / "campaigns"))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# --daemon N: the production topology's code server path
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own process group, stopped (SIGTERM, then SIGKILL) with its children on exit."""
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue


def read_sensor_ticks(home: Path, sensor: str) -> list[Json]:
    """The ticks of ``sensor`` from the instance: start, end, duration, status, logged lines."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg
    from dagster._core.definitions.instigation_logger import get_instigation_log_records

    rows: list[Json] = []
    with dg.DagsterInstance.get() as instance:
        states = [s for s in instance.all_instigator_state() if s.instigator_name == sensor]
        for state in states:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
            for t in sorted(ticks, key=lambda t: t.timestamp):
                lines: list[str] = []
                if t.log_key:
                    try:
                        recs = get_instigation_log_records(instance, t.log_key)
                        lines = [str(r.get("msg", "")).split(f"{sensor} - ", 1)[-1] for r in recs]
                    except Exception as exc:  # noqa: BLE001 - logs are a bonus
                        lines = [f"(logs unreadable: {exc})"]
                end = t.end_timestamp
                rows.append(
                    {
                        "start": dt.datetime.fromtimestamp(t.timestamp, dt.UTC).isoformat(timespec="seconds"),
                        "duration_s": round(end - t.timestamp, 2) if end else None,
                        "status": t.status.value,
                        "cursor": t.cursor,
                        "error": t.error.message.strip()[:300] if t.error else None,
                        "summary": [ln for ln in lines if " specs: stat'ed " in ln or "pending" in ln][-2:],
                        "log_lines": len(lines),
                    }
                )
    return rows


def bench_daemon(n: int, workdir: Path, keep: bool, timeout_s: float, interval_s: int | None) -> Json:
    root = Path(tempfile.mkdtemp(prefix=f"bench_control_plane_daemon_{n}_", dir=workdir))
    campaigns_dir = root / "campaigns"
    home = make_home(root)
    generate(campaigns_dir, 0, n)
    port = free_port()
    (root / "workspace.yaml").write_text(
        yaml.safe_dump(
            {"load_from": [{"grpc_server": {"host": "localhost", "port": port, "location_name": "media_routes"}}]}
        )
    )
    extra = {"MEDIA_ROUTES_AUTOMATION": "stopped"}
    if interval_s is not None:
        extra["MEDIA_ROUTES_SENSOR_INTERVAL_S"] = str(interval_s)
    env = child_env(home, campaigns_dir, **extra)
    out: Json = {"n": n, "root": str(root), "port": port, "sensor_interval_s": interval_s or 30, "load_start": load()}
    registered = 0
    try:
        code_cmd = [str(BIN / "dagster"), "code-server", "start", "-m", "media_routes.definitions", "-p", str(port)]
        with started(code_cmd, env, root / "code-server.log") as code:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 300:
                ping = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)]
                if subprocess.run(ping, env=env, capture_output=True).returncode == 0:
                    break
                if code.poll() is not None:
                    raise SystemExit(f"code server exited: see {root / 'code-server.log'}")
                time.sleep(2)
            out["code_server_ready_s"] = round(time.perf_counter() - t0, 1)
            print(f"code server ready in {out['code_server_ready_s']} s on port {port}", file=sys.stderr, flush=True)
            daemon_cmd = [str(BIN / "dagster-daemon"), "run", "-w", str(root / "workspace.yaml")]
            with started(daemon_cmd, env, root / "daemon.log"):
                t0 = time.perf_counter()
                probe = [
                    sys.executable,
                    "-c",
                    "import dagster as dg\n"
                    "with dg.DagsterInstance.get() as i: print(len(i.get_dynamic_partitions('campaign')))",
                ]
                done_since: float | None = None
                while time.perf_counter() - t0 < timeout_s:
                    time.sleep(15)
                    res = subprocess.run(probe, env=env, capture_output=True, text=True)
                    registered = int(res.stdout.strip() or 0) if res.returncode == 0 else registered
                    print(f"  {time.perf_counter() - t0:.0f} s: {registered} registered", file=sys.stderr, flush=True)
                    if registered >= n and done_since is None:
                        done_since = time.perf_counter()
                        out["all_registered_after_s"] = round(done_since - t0, 1)
                    # one more interval after the last registration: the tick that finds nothing pending
                    if done_since is not None and time.perf_counter() - done_since > (interval_s or 30) + 15:
                        break
                out["daemon_ran_s"] = round(time.perf_counter() - t0, 1)
        out["registered"] = registered
        out["load_end"] = load()
        out["ticks"] = ticks = read_sensor_ticks(home, "campaign_folder_sensor")
        durations = [t["duration_s"] for t in ticks if t["duration_s"] is not None]
        out["longest_tick_s"] = max(durations, default=None)
        out["tick_statuses"] = dict(Counter(t["status"] for t in ticks))
        daemon_log = re.sub(r"\x1b\[[0-9;]*m", "", (root / "daemon.log").read_text(errors="replace")).splitlines()
        out["daemon_log_tail"] = [ln for ln in daemon_log if "campaign_folder_sensor" in ln][-20:]
        return out
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--daemon", type=int, metavar="N", help="run the code server + daemon path at N campaigns instead")
    ap.add_argument(
        "--daemon-timeout", type=float, default=1800.0, help="seconds to wait for the daemon (default 1800)"
    )
    ap.add_argument("--daemon-interval", type=int, help="MEDIA_ROUTES_SENSOR_INTERVAL_S for --daemon (default: 30)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--keep", action="store_true", help="keep the generated campaigns and instance")
    ap.add_argument(
        "--append", action="store_true", help="keep the other sizes already in the results file (a separate long run)"
    )
    ap.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/bench_control_plane*.json)")
    ap.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="automation + schedule only, at N partitions and index entries without event history",
    )
    ap.add_argument("--phase", choices=["sensor", "control", "synthetic"], help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase:
        sys.path.insert(0, str(REPO))
        import warnings

        warnings.filterwarnings("ignore")
        phases = {"sensor": phase_sensor, "control": phase_control, "synthetic": phase_synthetic}
        result = phases[args.phase](args.root, args.n)
        (args.root / f"{args.phase}.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0

    meta: Json = {
        "date": now(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "note": "load = os.getloadavg() (1, 5, 15 min) right after each figure; the machine is shared (2 cores)",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        result = {
            "benchmark": "bench_control_plane --synthetic",
            **meta,
            **bench_synthetic(args.synthetic, args.workdir, args.keep),
        }
        path = args.out or RESULTS / "bench_control_plane_synthetic.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k not in meta}, indent=2))
        return 0
    if args.daemon:
        result = {
            "benchmark": "bench_control_plane --daemon",
            **meta,
            **bench_daemon(args.daemon, args.workdir, args.keep, args.daemon_timeout, args.daemon_interval),
        }
        path = args.out or RESULTS / "bench_control_plane_daemon.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print("| # | start (UTC) | duration s | status | summary |\n|---|---|---:|---|---|")
        for i, t in enumerate(result["ticks"], 1):
            print(f"| {i} | {t['start']} | {t['duration_s']} | {t['status']} | {'; '.join(t['summary'])[:300]} |")
        print(f"\nregistered {result['registered']} of {args.daemon}; results in {path}")
        return 0 if result["registered"] >= args.daemon else 1

    results: list[Json] = []
    path = args.out or RESULTS / "bench_control_plane.json"
    for n in sorted(args.sizes):
        results.append({**bench_size(n, args.workdir, args.keep), "measured_at": now(), "commit": meta["commit"]})
        if args.append and path.is_file():  # the sizes measured by another run, unless measured again here
            ours = {r["n"] for r in results}
            results += [r for r in json.loads(path.read_text())["sizes"] if r["n"] not in ours]
            results.sort(key=lambda r: r["n"])
        result = {"benchmark": "bench_control_plane", **meta, "sizes": results, "growth": growth(results)}
        path.write_text(json.dumps(result, indent=2) + "\n")  # after each size: a long run keeps what it measured
        print(table(results), file=sys.stderr, flush=True)
    print(table(results))
    print(f"\nresults in {path}")
    return 0 if all(r["control"]["verification"]["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
