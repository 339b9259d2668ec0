"""What a command's runs actually did, read back from the instance and the ledger (the command line prints it).

Per stage: the route that made the materialization (local, hosted, a fallback, a cache hit) and its credits; per
failed run: the one-line reason (stage, provider, model, reason, request id) that the route runner attached to the
step failure, without the stack trace. Nothing here is inferred from the plan: only what was materialized and what
the ledger booked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from media_routes.defs.stages.route_runner import FAILURE_LINE
from media_routes.lineage import latest_record, trace_row


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    partition: str
    kind: str  # "local", "hosted", "fallback", "cache hit", "not materialized"
    route: str
    credits: float
    detail: str = ""

    def line(self) -> str:
        if self.kind == "not materialized":
            return f"{self.stage} [{self.partition}]: not materialized"
        credits = f"{self.credits:g} credits"
        if self.kind == "local":
            return f"{self.stage} [{self.partition}]: local engine, {credits}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.stage} [{self.partition}]: {self.kind} {self.route}{detail}, {credits}"


def describe(row: dict[str, Any]) -> StageOutcome:
    """The route of one materialization (a ``lineage.trace_row``) as the command line reports it."""
    route = row.get("route") or {}
    calls = route.get("calls") or {}
    name = str(route.get("route") or row.get("provider") or "?")
    fell_back = [a["route"] for a in route.get("attempts") or [] if a.get("outcome") == "fallback"]
    hits, paid = int(calls.get("cache_hits") or 0), int(calls.get("calls") or 0)
    credits = float(row.get("credits") or calls.get("credits") or 0.0)
    if fell_back:
        kind, detail = "fallback", "after " + ", ".join(fell_back)
    elif row.get("provider") == "local" or name == "local":
        kind, detail = "local", ""
    elif hits and not paid:
        kind, detail = "cache hit", f"{hits} call(s) from the cache"
    else:
        kind, detail = "hosted", f"{paid} paid call(s)" + (f", {hits} from the cache" if hits else "")
    return StageOutcome(row["stage"], row["partition"], kind, name, credits, detail)


def stage_outcomes(
    instance: dg.DagsterInstance, run_id: str, stages: Iterable[str], partition: str
) -> list[StageOutcome]:
    """What run ``run_id`` materialized for each of ``stages`` in ``partition`` (or that it did not)."""
    out = []
    for stage in stages:
        record = latest_record(instance, stage, partition)
        if record is None or record.run_id != run_id:
            out.append(StageOutcome(stage, partition, "not materialized", "", 0.0))
        else:
            out.append(describe(trace_row(stage, partition, record)))
    return out


def failure_reasons(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """One line per failed step of the run: the route runner's reason, else the error's type and first line."""
    lines: list[str] = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None or event.step_failure_data is None:
            continue
        data = event.step_failure_data
        meta = data.user_failure_data.metadata if data.user_failure_data is not None else {}
        value = meta.get(FAILURE_LINE)
        if isinstance(value, dg.TextMetadataValue) and value.text:
            line = value.text
        elif data.user_failure_data is not None and data.user_failure_data.description:
            line = f"{event.step_key}: {first_line(data.user_failure_data.description)}"
        elif data.error is not None:
            line = f"{event.step_key}: {data.error.cls_name}: {first_line(data.error.message)}"
        else:
            line = f"{event.step_key}: failed"
        if line not in lines:
            lines.append(line)
    return lines


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def ledger_credits(ledger_frame: Any, run_ids: Sequence[str]) -> tuple[float, int]:
    """(credits booked, billed answers that were unusable) by these runs, from the ledger's rows."""
    if ledger_frame.empty:
        return 0.0, 0
    rows = ledger_frame[ledger_frame["run_id"].isin(list(run_ids))]
    unusable = rows[rows["billed"] & (rows["outcome"] != "usable")]
    return float(rows["credits"].sum()), len(unusable)
