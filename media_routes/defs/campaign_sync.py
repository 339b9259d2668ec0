"""One tick of the campaign folder sensor, on the spec index (:mod:`media_routes.spec_index`).

A tick stats the folder against the index and re-reads only campaigns whose files changed, or that
the index has never seen, in pages under a time and count budget, so it finishes far inside the
code server's 60 s sensor timeout at any number of campaigns; what is left is done by the next
ticks and reported as pending. For each page it:

1. validates the changed specs (a broken or huge spec becomes that entry's error; the others go on);
2. reads the last observed slice hash of the page's campaigns, one query per stage for the page;
3. records an observation for each slice whose hash differs, then registers the page's new
   partitions (observations first, so automation sees a new campaign complete, never half-observed);
4. saves the page's entries to the index, marked synced.

The tick writes to the instance itself, rather than returning events in the ``SensorResult`` for the
daemon to write, so the index is only marked synced after the writes succeeded and the time they
take counts against the tick's budget. Every write is idempotent (it compares with the instance),
so a tick that dies half-way, a lost cursor or a lost index re-runs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import dagster as dg

from media_routes.defs.campaign_specs import latest_slice_hashes, queries_for, slice_observations
from media_routes.spec_index import Entry, SpecIndex, refresh_entry, scan
from media_routes.stages import CAMPAIGN_DIMENSION, STAGES

PAGE = 25  # campaigns validated and compared together (one query per stage); the budget is checked per campaign


@dataclass(frozen=True)
class TickBudget:
    """How much one tick may do before it leaves the rest to the next tick."""

    seconds: float = 20.0  # validation + instance writes; the stat pass and the index save come on top
    max_specs: int = 2_000  # campaigns taken into a tick at most (validated or compared)


@dataclass
class TickReport:
    """What a tick did: the counts and timings its log reports."""

    listed: int = 0
    stat_calls: int = 0
    unchanged: int = 0
    parsed: int = 0
    invalid: list[str] = field(default_factory=list)  # campaigns found invalid this tick
    still_invalid: list[str] = field(default_factory=list)  # known invalid, unchanged
    observations: dict[str, list[str]] = field(default_factory=dict)  # campaign -> stages observed
    registered: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    formats_added: dict[str, list[str]] = field(default_factory=dict)
    pending: int = 0
    queries: int = 0  # instance reads and writes made by the tick (the index's key-value reads included)
    seconds: dict[str, float] = field(default_factory=dict)  # stat, parse, compare, observe, register, save
    log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = {k: f"{v:.2f}s" for k, v in self.seconds.items()}
        observed = sum(len(v) for v in self.observations.values())
        return (
            f"{self.listed} specs: stat'ed {self.stat_calls} files in {s.get('stat', '0s')}; "
            f"parsed {self.parsed} ({len(self.invalid)} invalid) in {s.get('parse', '0s')}; "
            f"observed {observed} slices of {len(self.observations)} campaigns in {s.get('observe', '0s')}; "
            f"registered {len(self.registered)} in {s.get('register', '0s')}; "
            f"compared in {s.get('compare', '0s')}; index saved in {s.get('save', '0s')}; "
            f"{self.pending} pending for the next tick; {self.unchanged} unchanged"
        )


class InstanceWrites:
    """The instance reads and writes of a tick, batched and counted."""

    def __init__(self, instance: dg.DagsterInstance, source: str) -> None:
        self.instance = instance
        self.source = source
        self.queries = 0
        self._registered: set[str] | None = None

    def registered(self) -> set[str]:
        if self._registered is None:
            self.queries += 1
            self._registered = set(self.instance.get_dynamic_partitions(CAMPAIGN_DIMENSION))
        return self._registered

    def last_observed(self, campaigns: Sequence[str]) -> dict[str, dict[str, str]]:
        """Campaign -> stage -> slice hash last observed, for these campaigns: one query per stage."""
        self.queries += queries_for(campaigns)
        return latest_slice_hashes(self.instance, campaigns)

    def observe(self, campaign: str, changed: dict[str, str]) -> None:
        for event in slice_observations(campaign, changed, source=self.source):
            self.queries += 1
            self.instance.report_runless_asset_event(event)

    def register(self, campaigns: list[str]) -> None:
        if campaigns:
            self.queries += 1
            self.instance.add_dynamic_partitions(CAMPAIGN_DIMENSION, campaigns)
            self.registered().update(campaigns)


def _timed(report: TickReport, part: str, started: float) -> float:
    now = time.perf_counter()
    report.seconds[part] = report.seconds.get(part, 0.0) + now - started
    return now


def sync_campaigns(
    instance: dg.DagsterInstance,
    campaigns_dir: Path,
    *,
    budget: TickBudget = TickBudget(),
    source: str = "campaign_folder_sensor",
    clock: Callable[[], float] = time.perf_counter,
) -> TickReport:
    """Bring the index and the instance up to date with the folder, as far as the budget allows."""
    report = TickReport()
    writes = InstanceWrites(instance, source)
    kv = instance.daemon_cursor_storage
    t = time.perf_counter()
    index = SpecIndex.load(kv, campaigns_dir)
    found = scan(campaigns_dir, index.entries)
    t = _timed(report, "stat", t)
    report.listed, report.stat_calls, report.unchanged = found.listed, found.stat_calls, found.unchanged
    touched: set[str] = set()

    for cid in found.gone:
        index.entries[cid] = replace(index.entries[cid], deleted=True)
        touched.add(cid)
        report.removed.append(cid)
        report.log.append(f"{cid}: spec removed; partition and history kept, no longer scheduled")

    # Racy entries first, outside the budget: a re-hash (no parse unless the bytes changed), a few per tick.
    racy_changed: list[str] = []
    t = time.perf_counter()
    for cid in found.racy:
        entry, parsed = refresh_entry(campaigns_dir / cid, index.entries[cid])
        if parsed:  # the bytes did change under an unchanged stat: treat it as an edit
            racy_changed.append(cid)
        else:
            index.entries[cid] = entry
            touched.add(cid)
    _timed(report, "stat", t)
    # then edits (few, and awaited), then campaigns never synced, then the new ones, in id order
    queue = [*racy_changed, *found.changed, *found.unsynced, *found.new]
    work = queue[: budget.max_specs]
    started = clock()
    done = 0

    def over_budget() -> bool:  # checked before every campaign, so a tick ends within one campaign's work
        return done + len(page_done) > 0 and clock() - started >= budget.seconds

    for page_start in range(0, len(work), PAGE):
        page_done: list[str] = []
        if over_budget():
            break
        t = time.perf_counter()
        entries: dict[str, Entry] = {}
        settled: set[str] = set()  # same bytes as when last synced (a touch, a racy mtime): nothing to compare
        for cid in work[page_start : page_start + PAGE]:
            if entries and clock() - started >= budget.seconds:
                break
            previous = index.entries.get(cid)
            entry, parsed = refresh_entry(campaigns_dir / cid, previous)
            report.parsed += parsed
            if not parsed and previous is not None and previous.synced:
                settled.add(cid)
            if entry.error is not None and parsed:
                report.invalid.append(cid)
                report.log.append(f"skipping an invalid campaign spec:\n{entry.error}")
            if previous is not None and previous.formats and entry.error is None:
                added = [f for f in entry.formats if f not in previous.formats]
                if added:
                    report.formats_added[cid] = added
                    report.log.append(f"{cid}: format(s) added: {', '.join(added)}; automation makes them")
            entries[cid] = entry
        t = _timed(report, "parse", t)
        valid = [cid for cid, e in entries.items() if e.valid and cid not in settled]
        observed = writes.last_observed(valid) if valid else {}
        known = writes.registered() if valid else set()
        t = _timed(report, "compare", t)
        for cid, entry in entries.items():
            if cid in valid:
                if over_budget():
                    break  # the rest of the page is taken again by the next tick (compared afresh)
                last = observed.get(cid, {})
                changed = {s: h for s, h in entry.slices.items() if last.get(s) != h}
                if changed:
                    writes.observe(cid, changed)
                    report.observations[cid] = list(changed)
                    if len(changed) == len(STAGES) and not last:
                        report.log.append(
                            f"{cid}: new spec; automation makes its stills, then {', '.join(entry.formats)}"
                        )
                    else:
                        first = next(s for s in STAGES if s in changed)
                        report.log.append(
                            f"{cid}: spec edit touches {', '.join(changed)}; automation re-runs from {first} onward"
                        )
            page_done.append(cid)
        t = _timed(report, "observe", t)
        new = [cid for cid in page_done if cid in valid and cid not in known]
        writes.register(new)
        report.registered += new
        t = _timed(report, "register", t)
        for cid in page_done:
            # an invalid spec is synced too: its last good slices (if any) stay what the instance has
            index.entries[cid] = replace(entries[cid], synced=True)
            touched.add(cid)
        done += len(page_done)
        if len(page_done) < len(work[page_start : page_start + PAGE]):
            break
    report.pending = len(queue) - done
    if report.pending:
        report.log.append(f"{report.pending} campaign spec(s) still pending: the next ticks take them")
    report.still_invalid = sorted(
        cid for cid, e in index.entries.items() if e.error is not None and not e.deleted and cid not in report.invalid
    )
    if report.still_invalid:
        shown = ", ".join(report.still_invalid[:10]) + (" ..." if len(report.still_invalid) > 10 else "")
        report.log.append(f"{len(report.still_invalid)} invalid spec(s) unchanged since reported: {shown}")
    t = time.perf_counter()
    index.save(kv, touched)
    _timed(report, "save", t)
    report.queries = writes.queries + index.reads + (1 if touched else 0)
    return report
