"""`media-routes`: run the demo, re-roll a stage, trace lineage, validate specs.

Every command runs real Dagster runs against the instance in $DAGSTER_HOME (default
./.dagster_home, printed), so `dagster dev` with the same DAGSTER_HOME shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from media_routes import settings
from media_routes.cli_args import (
    campaign_arg,
    format_arg,
    format_problem,
    output_dir_problem,
    output_file_problem,
    seed_arg,
)
from media_routes.spec import (
    SEED_LIMIT,
    SPEC_FILENAME,
    Campaign,
    SpecError,
    discover_spec_paths,
    load_all,
    load_campaign,
)
from media_routes.stages import STAGES

if TYPE_CHECKING:
    import dagster as dg

    from media_routes.definitions import Resources
    from media_routes.pipeline import PlannedRun, RunSummary

console = Console(stderr=True, soft_wrap=True)
# tables are wide: when output is piped, do not squeeze them into 80 columns
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


# --------------------------------------------------------------------------------------------------
# instance
# --------------------------------------------------------------------------------------------------


def _instance() -> dg.DagsterInstance:
    """The Dagster instance in DAGSTER_HOME, creating a local one (SQLite) if it is not set."""
    import dagster as dg

    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    template = settings.REPO_ROOT / "dagster.yaml"
    if not cfg.exists() and template.is_file():
        shutil.copyfile(template, cfg)
    if not os.environ.get("DAGSTER_HOME"):
        console.print("[dim]DAGSTER_HOME is not set: using the local default below[/dim]")
    os.environ["DAGSTER_HOME"] = str(home)
    console.print(f"[dim]Dagster instance: {home} (DAGSTER_HOME)[/dim]")
    import fcntl

    from media_routes.recovery import recover

    # two commands started at once on a new DAGSTER_HOME would both create the SQLite schema
    with (home / ".instance.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)  # creates the storage, under the lock
        for r in recover(instance, settings.media_root() / ".scratch"):
            console.print(
                f"[yellow]run {r.run_id} ({r.job_name}) was left running by a media-routes process that is gone "
                f"(pid {r.pid}): marked failed, its pool slots freed[/yellow]"
            )
    return instance


def _resources(campaigns_dir: Path) -> Resources:
    from media_routes.definitions import build_resources

    return build_resources(campaigns_dir=str(campaigns_dir))


# --------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------


def _spec_paths(paths: list[str]) -> list[Path]:
    if not paths:
        paths = [str(settings.campaigns_dir())]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / SPEC_FILENAME).is_file():
            found.append(p / SPEC_FILENAME)
        elif p.is_dir():
            found += discover_spec_paths(p)
        else:
            found.append(p)  # a file (or a missing path: load_campaign reports it)
    return found


def _print_invalid(path: Path, lines: Sequence[str]) -> None:
    out.print(f"[red]INVALID[/red] {path}")
    for line in lines:
        out.print(f"  {line}", markup=False, highlight=False)


def _problem_lines(error: str) -> list[str]:
    """``field: reason`` lines of an indexed error (whose lines start with the spec's path)."""
    return [line.split(f"{SPEC_FILENAME}: ", 1)[-1] for line in error.splitlines()]


def _validation_index(full: bool) -> Any:
    """The instance whose spec index validate may reuse and update, or None (no local instance, or --full)."""
    if full:
        return None
    home = settings.dagster_home()
    if not (home / "dagster.yaml").is_file():
        return None
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(home))  # the local dagster.yaml reads its base_dir from it
    try:
        return dg.DagsterInstance.from_config(str(home))
    except Exception as exc:  # noqa: BLE001 - validation must work without an instance
        console.print(f"[yellow]not using the spec index in {home}: {exc}[/yellow]")
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    from media_routes.spec_index import SpecIndex, is_current, refresh_entry

    paths = _spec_paths(args.paths)
    if not paths:
        console.print("[red]no campaign specs found[/red]")
        return 1
    instance = _validation_index(args.full)
    indexes: dict[Path, SpecIndex] = {}
    changed: dict[Path, set[str]] = {}
    errors = reused = 0
    for path in paths:
        folder = path.parent
        if instance is None or path.name != SPEC_FILENAME or not path.is_file():
            try:
                c = load_campaign(path)
            except SpecError as exc:
                errors += 1
                _print_invalid(path, [f"{p.field}: {p.reason}" for p in exc.problems])
                continue
            out.print(f"[green]ok[/green] {path} ({c.id}: formats {', '.join(c.spec.formats)})")
            continue
        root = folder.parent.resolve()
        if root not in indexes:
            indexes[root] = SpecIndex.load(instance.daemon_cursor_storage, root)
        entries = indexes[root].entries
        entry = entries.get(folder.name)
        if entry is not None and is_current(folder, entry):
            reused += 1
        else:
            entry, _ = refresh_entry(folder, entry)
            entries[folder.name] = entry
            changed.setdefault(root, set()).add(folder.name)
        if entry.error is not None:
            errors += 1
            _print_invalid(path, _problem_lines(entry.error))
        else:
            out.print(f"[green]ok[/green] {path} ({entry.campaign}: formats {', '.join(entry.formats)})")
    for root, cids in changed.items():
        indexes[root].save(instance.daemon_cursor_storage, cids)
    if instance is not None:
        out.print(
            f"[dim]{len(paths)} spec(s): {reused} unchanged since they were last checked (spec index in "
            f"{settings.dagster_home()}), {len(paths) - reused} checked; --full re-checks all[/dim]"
        )
        instance.dispose()
    if errors:
        out.print(f"[red]{errors} of {len(paths)} spec(s) invalid[/red]")
    return 1 if errors else 0


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------


def _execute(
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any],
    plan: Sequence[PlannedRun],
    *,
    seeds: dict[str, int] | None = None,
    tags: dict[str, str] | None = None,
    label: str = "",
    verbose: bool = False,
) -> list[RunSummary]:
    """Run the plan, stopping at the first failed run. A failure prints its one-line reason (provider, model, reason,
    request id); Dagster's own log lines and stack traces only with ``verbose``."""
    from media_routes.pipeline import materialize_stages
    from media_routes.recovery import watch_pool_waits
    from media_routes.run_report import failure_reasons

    total = sum(len(r.stages) for r in plan)
    summaries: list[RunSummary] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(label or "materializing", total=total)
        for run in plan:
            progress.update(task, description=f"{label} {run.partition}: {' -> '.join(run.stages)}")
            with watch_pool_waits(instance, lambda line: console.print(f"[yellow]{escape(line)}[/yellow]")):
                summary = materialize_stages(
                    instance,
                    resources,
                    run.stages,
                    run.partition,
                    seeds=seeds,
                    tags=tags,
                    raise_on_error=False,
                    log_level="WARNING" if verbose else "CRITICAL",
                )
            summaries.append(summary)
            if not summary.success:
                progress.stop()
                console.print(
                    f"[red]run {summary.run_id} failed[/red] for {run.partition}. Earlier outputs are untouched."
                )
                for line in failure_reasons(instance, summary.run_id) or ["(no step failure recorded)"]:
                    console.print(f"[red]FAILED[/red] {escape(line)}", highlight=False)
                if not verbose:
                    console.print("[dim]the whole error: --verbose, or the run in `dagster dev`[/dim]")
                return summaries
            progress.advance(task, len(run.stages))
    return summaries


def _print_routes(instance: dg.DagsterInstance, resources: Mapping[str, Any], summaries: Sequence[RunSummary]) -> float:
    """The routes that actually ran per stage (local, hosted, fallback, cache hit) and the credits the ledger booked
    for these runs; returns the credits."""
    from media_routes.run_report import ledger_credits, stage_outcomes

    for s in summaries:
        for outcome in stage_outcomes(instance, s.run_id, s.stages, s.partition):
            out.print(f"  {outcome.line()}", highlight=False, markup=False)
    credits, unusable = ledger_credits(resources["providers"].ledger().frame(), [s.run_id for s in summaries])
    note = f" ({unusable} billed answer(s) unusable, see `media-routes costs`)" if unusable else ""
    out.print(f"credits spent by these runs: {credits:g}{note}", highlight=False)
    return credits


def cmd_demo(args: argparse.Namespace) -> int:
    from media_routes.defs.campaign_specs import observe_campaign
    from media_routes.pipeline import plan_runs, register_campaigns

    campaigns_dir = Path(args.campaigns_dir) if args.campaigns_dir else settings.campaigns_dir()
    problem = output_dir_problem(Path(args.out).resolve())
    if problem:  # before rendering anything: a run of minutes must not end on an unwritable --out
        console.print(f"[red]cannot export the deliverables: {escape(problem)}[/red] (--out)")
        return 2
    good, bad = load_all(campaigns_dir)
    for exc in bad:
        console.print(f"[yellow]skipping an invalid campaign:[/yellow]\n{exc}", markup=True, highlight=False)
    if args.campaign:
        missing = [c for c in args.campaign if c not in good]
        if missing:
            console.print(f"[red]unknown or invalid campaign(s): {', '.join(missing)}[/red]")
            return 1
        good = {k: v for k, v in good.items() if k in args.campaign}
    if not good:
        console.print(f"[red]no valid campaigns under {campaigns_dir}[/red]")
        return 1
    instance = _instance()
    resources = _resources(campaigns_dir)
    new = register_campaigns(instance, list(good))
    if new:
        console.print(f"registered campaign partitions: {', '.join(new)}")
    for campaign in good.values():
        # record the spec slices being rendered, so a daemon started later sees nothing to re-run
        observe_campaign(instance, campaign, source="media-routes demo")
    started = time.perf_counter()
    failed = False
    ran: list[RunSummary] = []
    for cid, campaign in good.items():
        plan = plan_runs(cid, campaign.spec.formats)
        summaries = _execute(
            instance, resources, plan, tags={"media_routes/command": "demo"}, label=cid, verbose=args.verbose
        )
        ran += summaries
        failed |= not all(s.success for s in summaries)
    elapsed = time.perf_counter() - started
    out_dir = Path(args.out).resolve()
    from media_routes.export import export_deliverables

    out.print(f"[bold]deliverables in {out_dir}[/bold]")
    for cid, campaign in good.items():
        exported = export_deliverables(instance, resources["media_store"], campaign, out_dir)
        for fmt, files in exported.formats.items():
            for kind in ("still", "motion"):
                out.print(f"  {cid} {fmt:>5} {kind:<7} {files.get(kind, '(missing)')}", highlight=False)
        if exported.contact_sheet:
            out.print(f"  {cid} contact sheet {exported.contact_sheet}", highlight=False)
    verdict = "FAILED" if failed else "rendered"
    out.print(f"{verdict} {len(good)} campaign(s) in {elapsed:.0f} s; the route of each stage:")
    _print_routes(instance, resources, ran)
    store: Any = resources["media_store"]  # a LocalMediaStore (root) or an S3MediaStore (bucket, prefix)
    out.print(f"media store: {getattr(store, 'root', None) or f's3://{store.bucket}/{store.prefix}'}")
    out.print(f"see the runs and lineage: DAGSTER_HOME={settings.dagster_home()} dagster dev")
    return 1 if failed else 0


def _registered_campaign(instance: dg.DagsterInstance, campaign_id: str) -> bool:
    return bool(instance.has_dynamic_partition("campaign", campaign_id))


def _load_one(args: argparse.Namespace, doing: str) -> tuple[Path, Campaign | None]:
    """The campaigns folder and ``args.campaign``'s validated spec, or None after printing why not."""
    campaigns_dir = Path(args.campaigns_dir) if args.campaigns_dir else settings.campaigns_dir()
    try:
        return campaigns_dir, load_campaign(campaigns_dir / args.campaign / SPEC_FILENAME)
    except SpecError as exc:
        console.print(f"[red]cannot {doing}:[/red]\n{exc}", markup=True, highlight=False)
        return campaigns_dir, None


def cmd_reroll(args: argparse.Namespace) -> int:
    from media_routes.pipeline import plan_runs

    campaigns_dir, campaign = _load_one(args, "re-roll")
    if campaign is None:
        return 1
    problem = format_problem(args.format, campaign.id, campaign.spec.formats)
    if problem:
        console.print(f"[red]cannot re-roll: {escape(problem)}[/red]")
        return 2
    instance = _instance()
    if not _registered_campaign(instance, campaign.id):
        console.print(f"[red]campaign {campaign.id!r} has no partition yet: run `media-routes demo` first[/red]")
        return 1
    seed = args.seed if args.seed is not None else secrets.randbelow(SEED_LIMIT)
    formats = [args.format] if args.format else list(campaign.spec.formats)
    plan = plan_runs(campaign.id, formats, from_stage=args.stage)
    console.print(
        f"re-rolling {args.stage} for {campaign.id} with seed {seed}; re-materializing: "
        + "; ".join(f"{r.partition}: {', '.join(r.stages)}" for r in plan)
    )
    resources = _resources(campaigns_dir)
    summaries = _execute(
        instance,
        resources,
        plan,
        seeds={args.stage: seed},
        tags={
            "media_routes/command": "reroll",
            "media_routes/reroll_stage": args.stage,
            "media_routes/seed": str(seed),
        },
        label="reroll",
        verbose=args.verbose,
    )
    ok = all(s.success for s in summaries) and len(summaries) == len(plan)
    for s in summaries:
        out.print(f"{'ok' if s.success else 'FAILED'}  run {s.run_id}  {s.partition}: {', '.join(s.stages)}")
    _print_routes(instance, resources, summaries)
    if ok:
        out.print(f"to keep this result, set `seed: {seed}` in the spec or re-roll again with --seed {seed}")
    return 0 if ok else 1


def cmd_trace(args: argparse.Namespace) -> int:
    from media_routes.lineage import trace

    instance = _instance()
    rows = trace(instance, args.campaign, [args.format] if args.format else None)
    if args.json:
        out.print_json(json.dumps(rows, default=str))
        return 0 if rows else 1
    if not rows:
        console.print(f"[yellow]nothing materialized for {args.campaign!r}[/yellow]")
        return 1
    table = Table(title=f"lineage of {args.campaign}")
    for col in ("stage", "partition", "when (UTC)", "provider / model", "credits", "seed", "data version", "run"):
        table.add_column(col)
    for r in rows:
        calls = (r.get("route") or {}).get("calls") or {}
        credits = "" if r.get("credits") is None else f"{r['credits']:g}"
        if calls.get("cache_hits"):
            credits += f" ({calls['cache_hits']} cached)"
        table.add_row(
            r["stage"],
            r["partition"],
            r["timestamp"][:19],
            f"{r['provider']} / {r['model']}",
            credits,
            str(r["seed"]),
            (r["data_version"] or "")[:12],
            r["run_id"][:8],
        )
    out.print(table)
    for r in rows:
        reason = (r.get("route") or {}).get("reason")
        out.print(f"[dim]{r['stage']} {r['partition']}: {r['path']}[/dim]")
        if reason:
            out.print(f"[dim]    route: {reason}[/dim]", highlight=False)
    return 0


def cmd_routes(args: argparse.Namespace) -> int:
    """The route plan of a campaign: chosen route, fallbacks and rejections per stage, nothing run."""
    from media_routes.routing.profiles import ProfileError
    from media_routes.routing.router import plan_campaign

    campaigns_dir, campaign = _load_one(args, "plan routes")
    if campaign is None:
        return 1
    hub = _resources(campaigns_dir)["providers"]
    try:
        plans = plan_campaign(campaign, hub.router_context())
    except ProfileError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    if args.json:
        out.print_json(json.dumps([p.as_json() for p in plans]))
    else:
        profile = plans[0].profile
        out.print(f"[bold]{campaign.id}[/bold]: profile {profile.name} (intent {profile.intent}) from {profile.path}")
        for plan in plans:
            for line in plan.explain():
                out.print(line, highlight=False)
        total = sum(p.chosen.credits or 0.0 for p in plans if p.chosen)
        out.print(f"estimated credits for one full run on the chosen routes: {total:g} (before cache hits)")
    return 0 if all(p.chosen for p in plans) else 2


def cmd_estimate(args: argparse.Namespace) -> int:
    """Price the campaign's fan-out on its planned routes before running; what is cached costs nothing."""
    from media_routes.estimate import estimate
    from media_routes.routing.profiles import ProfileError

    campaigns_dir, campaign = _load_one(args, "estimate")
    if campaign is None:
        return 1
    problem = format_problem(args.format, campaign.id, campaign.spec.formats)
    if problem:
        console.print(f"[red]cannot estimate: {escape(problem)}[/red]")
        return 2
    hub = _resources(campaigns_dir)["providers"]
    try:
        rows = estimate(
            _instance(),
            campaign,
            hub.router_context(),
            hub.cache(),
            formats=[args.format] if args.format else None,
            reroll=args.reroll,
        )
    except ProfileError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    spent = hub.ledger().spent(campaign.id)
    total = sum(r.credits for r in rows)
    budget = campaign.spec.budget.credits if campaign.spec.budget else None
    if args.json:
        out.print_json(
            json.dumps({"rows": [r.as_json() for r in rows], "to_pay": total, "spent": spent, "budget": budget})
        )
    else:
        table = Table(title=f"estimate for {campaign.id}" + (f" (re-roll {args.reroll})" if args.reroll else ""))
        for col in ("stage", "format", "route", "units", "credits", "status", "why"):
            table.add_column(col)
        for r in rows:
            units = ", ".join(f"{v:g} {k}" for k, v in r.units.items())
            shown = f"{r.credits:g}" if r.status != "cached" else f"0 (was {r.list_credits:g})"
            table.add_row(r.stage, r.format or "", r.route or "-", units, shown, r.status, r.why)
        out.print(table)
        usd = total * hub.prices().usd_per_credit
        out.print(f"to pay: {total:g} credits (${usd:.2f}); spent so far: {spent:g} credits", highlight=False)
        if budget is not None:
            left = budget - spent
            verdict = "within budget" if total <= left else "OVER BUDGET: calls past the budget will be refused"
            out.print(f"budget {budget:g} credits, {left:g} left: {verdict}", highlight=False)
    return 0 if all(r.route for r in rows) else 2


def cmd_costs(args: argparse.Namespace) -> int:
    """Spend from the ledger: per campaign, stage, provider and format, hit rate, savings."""
    from media_routes.credits.report import cost_report

    problem = output_file_problem(Path(args.csv)) if args.csv else None
    if problem:
        console.print(f"[red]cannot write the CSV: {escape(problem)}[/red] (--csv)")
        return 2
    hub = _resources(settings.campaigns_dir())["providers"]
    report = cost_report(hub.ledger(), _instance(), args.campaign)
    if report.calls.empty:
        console.print("[yellow]the ledger has no calls yet[/yellow]")
        return 1
    if args.csv:
        report.calls.to_csv(args.csv, index=False)
        console.print(f"ledger rows written to {args.csv}")
    local_rows = int((report.calls["provider"] == "local").sum())
    if args.json:
        payload = {
            "by": {k: v.to_dict(orient="records") for k, v in report.by.items()},
            "hit_rate": report.hit_rate,  # hosted calls only
            "local_rows": local_rows,
            "spent_credits": report.spent_credits,
            "saved_by_cache": report.saved_by_cache,
            "saved_vs_naive": report.saved_vs_naive,
            "rerolls": report.rerolls.to_dict(orient="records"),
            # per provider: estimate vs what the provider reported; actual_credits null = "not reported"
            "actual_vs_estimate": report.actual.to_dict(orient="records") if report.actual is not None else [],
        }
        out.print_json(strict_json(payload))
        return 0
    for dim, frame in report.by.items():
        table = Table(title=f"spend by {dim}")
        for col in frame.columns:
            table.add_column(str(col))
        for row in frame.itertuples(index=False):
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        out.print(table)
    if report.actual is not None and not report.actual.empty:
        out.print(actual_vs_estimate_table(report.actual))
    rate = "n/a" if report.hit_rate is None else f"{report.hit_rate:.0%}"
    out.print(
        f"spent {report.spent_credits:g} credits; cache hit rate of hosted calls {rate}; saved by the cache "
        f"{report.saved_by_cache:g} credits; local-engine stage runs (not counted in the hit rate): {local_rows}",
        highlight=False,
    )
    if not report.rerolls.empty:
        table = Table(title="re-rolls against the naive full re-run")
        for col in report.rerolls.columns:
            table.add_column(str(col))
        for row in report.rerolls.itertuples(index=False):
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        out.print(table)
        out.print(f"saved against re-running the whole pipeline per re-roll: {report.saved_vs_naive:g} credits")
    return 0


def actual_vs_estimate_table(frame: Any) -> Table:
    """Estimated against actual cost per provider; "not reported" where the provider's contract reports no usage."""
    table = Table(title="estimated vs actual (provider-reported) cost of billed calls, credits")
    for col in ("provider", "billed calls", "estimated", "actual", "difference", "not reported"):
        table.add_column(col)
    for r in frame.itertuples(index=False):
        if r.actual_credits is None:
            actual, diff = "not reported", "-"
        else:
            partial = f" ({r.partial} partial: unpriced counts)" if r.partial else ""
            actual = f"{r.actual_credits:.4g} for {r.reported} call(s) estimated at {r.estimated_reported:.4g}{partial}"
            diff = f"{r.difference_credits:+.4g}"
        table.add_row(str(r.provider), str(r.billed), f"{r.estimated_credits:.4g}", actual, diff, str(r.not_reported))
    return table


def strict_json(value: Any) -> str:
    """``value`` as strict JSON: NaN and infinities (pandas' missing values) become null, other objects strings."""
    import math

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if v is None or isinstance(v, str | int | bool):
            return v
        if hasattr(v, "item"):  # numpy scalars
            return clean(v.item())
        try:
            import pandas as pd

            if pd.isna(v):
                return None
        except (TypeError, ValueError):
            pass
        return str(v)

    return json.dumps(clean(value), allow_nan=False)


def cmd_approve(args: argparse.Namespace) -> int:
    from media_routes import approvals
    from media_routes.lineage import latest_still_hash

    instance = _instance()
    still_hash = latest_still_hash(instance, args.campaign, args.format)
    if still_hash is None:
        console.print(f"[red]no aspect_outpaint still for {args.campaign}|{args.format} yet: nothing to review[/red]")
        return 1
    decision = approvals.record(
        instance,
        args.campaign,
        args.format,
        approved=not args.reject,
        still_hash=still_hash,
        by=args.by,
        note=args.note or "",
    )
    out.print(
        f"{args.campaign}|{args.format}: still {still_hash[:12]} {decision['approval']} by {decision['by']}"
        + (f" ({decision['note']})" if decision["note"] else "")
    )
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from media_routes.drift_report import COLUMNS, chain_rows, corrected_drift, first_exceeded, write_html
    from media_routes.lineage import trace

    problem = output_dir_problem(Path(args.html)) if args.html else None
    if problem:
        console.print(f"[red]cannot write the report: {escape(problem)}[/red] (--html)")
        return 2
    instance = _instance()
    chain = chain_rows(trace(instance, args.campaign, [args.format] if args.format else None))
    if not chain:
        console.print(f"[yellow]nothing materialized for {args.campaign!r}[/yellow]")
        return 1
    first = first_exceeded(chain)
    if args.json:
        payload = {
            "campaign": args.campaign,
            "first_exceeded": first,
            "corrected": [
                {"stage": c["stage"], "partition": c["partition"], **c["bridge"]} for c in corrected_drift(chain)
            ],
            "chain": chain,
        }
        out.print_json(json.dumps(payload, default=str))
    else:
        table = Table(title=f"drift along the chain: {args.campaign}")
        table.add_column("stage")
        table.add_column("partition")
        for _, label in COLUMNS:
            table.add_column(label, justify="right")
        table.add_column("checks")
        from media_routes.drift_report import _fmt

        for c in chain:
            table.add_row(
                c["stage"],
                c["partition"],
                *[_fmt(c[k]) for k, _ in COLUMNS],
                "[red]" + ", ".join(c["failed_checks"]) + "[/red]" if c["failed_checks"] else "ok",
            )
        out.print(table)
        for c in corrected_drift(chain):
            b = c["bridge"]
            out.print(
                f"[yellow]drift detected at {c['stage']} [{c['partition']}][/yellow] and bridged: grid dE00 max "
                f"{b['before']['grid_delta_e_max']:.2f} -> {b['after']['grid_delta_e_max']:.2f}, shadow chroma "
                f"{b['before']['shadow_chroma_retention']} -> {b['after']['shadow_chroma_retention']}"
            )
        if first:
            out.print(
                f"[red]first tolerance exceeded at {first['stage']} [{first['partition']}][/red]: "
                + "; ".join(first["failed_checks"].values())
            )
        else:
            out.print("[green]every check passed along the chain[/green]")
    if args.html:
        from media_routes.definitions import build_resources

        store = build_resources()["media_store"]
        target = write_html(chain, args.campaign, store, Path(args.html))
        out.print(f"report: {target}")
    return 0


# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="media-routes", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="register the example campaigns and render every stage and format")
    d.add_argument("--out", default="deliverables", help="where to export stills, videos and contact sheets")
    d.add_argument("--campaign", action="append", type=campaign_arg, help="only this campaign (repeatable)")
    d.add_argument(
        "--campaigns-dir",
        help=f"campaign specs folder (default ${settings.ENV_CAMPAIGNS_DIR} or ./campaigns)",
    )
    d.add_argument("--verbose", action="store_true", help="Dagster's log and the full error of a failed step")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("reroll", help="re-roll one stage with a new seed and re-materialize what follows")
    r.add_argument("stage", choices=STAGES)
    r.add_argument("--campaign", required=True, type=campaign_arg)
    r.add_argument("--format", type=format_arg, help="only this format for the per-format stages")
    r.add_argument("--seed", type=seed_arg, help="seed to use, 0 <= seed < 2**31 (default: a new random one, printed)")
    r.add_argument("--campaigns-dir")
    r.add_argument("--verbose", action="store_true", help="Dagster's log and the full error of a failed step")
    r.set_defaults(func=cmd_reroll)

    t = sub.add_parser("trace", help="latest materialization of every stage for a campaign")
    t.add_argument("campaign", type=campaign_arg)
    t.add_argument("--format", type=format_arg)
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=cmd_trace)

    ro = sub.add_parser("routes", help="explain the route plan of a campaign (chosen, fallbacks, rejected)")
    ro.add_argument("campaign", type=campaign_arg)
    ro.add_argument("--json", action="store_true")
    ro.add_argument("--campaigns-dir")
    ro.set_defaults(func=cmd_routes)

    es = sub.add_parser("estimate", help="price the campaign's stages x formats before running (cache aware)")
    es.add_argument("campaign", type=campaign_arg)
    es.add_argument("--format", type=format_arg)
    es.add_argument("--reroll", choices=STAGES, help="price a re-roll of this stage (and what follows)")
    es.add_argument("--json", action="store_true")
    es.add_argument("--campaigns-dir")
    es.set_defaults(func=cmd_estimate)

    co = sub.add_parser("costs", help="spend from the credit ledger, cache hit rate and savings")
    co.add_argument("campaign", nargs="?", type=campaign_arg)
    co.add_argument("--csv", metavar="FILE", help="also write every ledger row to a CSV file")
    co.add_argument("--json", action="store_true")
    co.set_defaults(func=cmd_costs)

    ap = sub.add_parser("approve", help="approve (or --reject) a format's still so motion may run")
    ap.add_argument("campaign", type=campaign_arg)
    ap.add_argument("format", type=format_arg)
    ap.add_argument("--reject", action="store_true")
    ap.add_argument("--note")
    ap.add_argument("--by", help="reviewer (default $MEDIA_ROUTES_REVIEWER or the login name)")
    ap.set_defaults(func=cmd_approve)

    dr = sub.add_parser("drift", help="quality figures along the chain and the stage where drift entered")
    dr.add_argument("campaign", type=campaign_arg)
    dr.add_argument("--format", type=format_arg)
    dr.add_argument("--json", action="store_true")
    dr.add_argument("--html", metavar="DIR", help="write a report with images, heatmaps and figures")
    dr.set_defaults(func=cmd_drift)

    v = sub.add_parser("validate", help="validate campaign specs; non-zero exit on any error")
    v.add_argument("paths", nargs="*", help="spec files, campaign folders or a campaigns folder")
    v.add_argument(
        "--full",
        action="store_true",
        help="re-check every spec; without it, specs whose files are unchanged since the last check "
        "(the spec index in $DAGSTER_HOME, kept by the campaign folder sensor and by validate) are not re-read",
    )
    v.set_defaults(func=cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    import dagster as dg

    # Dagster's beta notices (the code-location automation sensor, observable spec slices) are for the UI and
    # the code server's log, not for every command a user types.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False)) or os.environ.get("MEDIA_ROUTES_VERBOSE") == "1"
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: earlier outputs are untouched; a later command recovers the run")
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user; the traceback behind --verbose
        if verbose:
            raise
        from media_routes.providers.errors import redact

        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        console.print(
            f"[red]error[/red] ({args.command}): {escape(redact(f'{type(exc).__name__}: {first}'))}", highlight=False
        )
        console.print("[dim]the traceback: MEDIA_ROUTES_VERBOSE=1 (or --verbose where the command has it)[/dim]")
        return 1


if __name__ == "__main__":
    sys.exit(main())
