"""Cost reports from the ledger (pandas): spend by campaign, stage, provider and format, cache hit rate,
savings by the cache, what each re-roll saved against the naive way (re-running the whole pipeline), and per
provider the estimated cost against the actual cost the provider reported (``Ledger.actual_vs_estimate``).

The naive cost of a re-roll is the campaign's full pipeline at the prices last paid for each stage x
format (local stages cost 0). A re-roll is the set of runs one ``media-routes reroll`` started (same
campaign, stage and seed tags).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from media_routes.credits.ledger import Ledger


@dataclass
class CostReport:
    calls: pd.DataFrame  # every ledger row
    by: dict[str, pd.DataFrame]  # dimension -> totals
    hit_rate: float | None
    spent_credits: float
    saved_by_cache: float
    rerolls: pd.DataFrame  # one row per re-roll: campaign, stage, seed, paid, naive, saved
    # per provider: estimated (price table) against actual (provider-reported) cost, Ledger.actual_vs_estimate
    actual: pd.DataFrame | None = None

    @property
    def saved_vs_naive(self) -> float:
        return float(self.rerolls["saved"].sum()) if not self.rerolls.empty else 0.0


def full_pipeline_credits(calls: pd.DataFrame) -> dict[str, float]:
    """Per campaign: the last price paid for each (stage, format), summed (what a full re-run would pay)."""
    paid = calls[~calls["hit"]].copy()
    if paid.empty:
        return {}
    paid["fmt"] = paid["format"].fillna("")
    # a stage may make several calls in one run (fixes, chained video): sum per run, keep the latest run
    per_run = paid.groupby(["campaign", "stage", "fmt", "run_id"], as_index=False).agg(
        credits=("credits", "sum"), ts=("ts", "max")
    )
    latest = per_run.sort_values("ts").groupby(["campaign", "stage", "fmt"]).tail(1)
    return {str(k): float(v) for k, v in latest.groupby("campaign")["credits"].sum().items()}


def _reroll_of(instance: dg.DagsterInstance | None, run_ids: list[str]) -> dict[str, tuple[str, str] | None]:
    out: dict[str, tuple[str, str] | None] = {}
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id) if instance is not None else None
        tags = run.tags if run is not None else {}
        if tags.get("media_routes/command") == "reroll":
            out[run_id] = (tags.get("media_routes/reroll_stage", "?"), tags.get("media_routes/seed", "?"))
        else:
            out[run_id] = None
    return out


def cost_report(ledger: Ledger, instance: dg.DagsterInstance | None, campaign: str | None = None) -> CostReport:
    calls = ledger.frame(campaign)
    by = {dim: ledger.totals(by=dim, campaign=campaign) for dim in ("campaign", "stage", "provider", "format")}
    columns = ["campaign", "stage", "seed", "runs", "paid", "naive", "saved"]
    rerolls = pd.DataFrame(columns=columns)
    if not calls.empty:
        full = full_pipeline_credits(calls)
        marks = _reroll_of(instance, sorted(calls["run_id"].unique()))
        tagged = calls.assign(reroll=calls["run_id"].map(marks)).dropna(subset=["reroll"])
        rows = []
        for (cid, reroll), group in tagged.groupby(["campaign", "reroll"]):
            paid = float(group["credits"].sum())
            naive = full.get(str(cid), 0.0)
            rows.append([cid, reroll[0], reroll[1], group["run_id"].nunique(), paid, naive, naive - paid])
        if rows:
            rerolls = pd.DataFrame(rows, columns=columns)
    return CostReport(
        calls=calls,
        by=by,
        hit_rate=ledger.hit_rate(campaign),
        spent_credits=float(calls["credits"].sum()) if not calls.empty else 0.0,
        saved_by_cache=float(calls["saved_credits"].sum()) if not calls.empty else 0.0,
        rerolls=rerolls,
        actual=ledger.actual_vs_estimate(by="provider", campaign=campaign),
    )
