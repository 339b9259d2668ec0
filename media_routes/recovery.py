"""Crash recovery for runs the command line executes in its own process.

``media-routes`` runs jobs in-process (:func:`media_routes.pipeline.materialize_stages`). If that
process is killed (SIGKILL, a closed laptop lid, an out-of-memory kill), its run stays STARTED and
keeps its ``local_engine`` pool slot, and nothing in Dagster notices: run monitoring watches runs
that a run launcher started, not in-process ones. Two such crashes and every later run of the
instance waits on the pool (its limit is 2) forever.

So every in-process run is tagged with the host, the process id and that process's start time,
and every command first calls :func:`recover` on its instance. A run still STARTED whose process
is gone from this host is marked failed, with a message saying why, and its pool slots are
freed. While a command's run waits for a pool slot held by another run (another command, the daemon),
:func:`watch_pool_waits` says so with the holder's run id, job, status and process. Temp files
that such a run left in the media store's scratch folder are removed. The start
time protects against pid reuse: a new process with the same pid does not count as the old one.
Runs started by the daemon carry no such tags and stay with run monitoring.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

HOST_TAG = "media_routes/host"
PID_TAG = "media_routes/pid"
PID_START_TAG = "media_routes/pid_start"
IN_PROGRESS = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat(5), counted after the command name


def process_tags() -> dict[str, str]:
    """Tags that let a later command tell whether the process running a run is still alive."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    start = _start_time(pid)
    if start is not None:
        tags[PID_START_TAG] = start
    return tags


def process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return start is None or _start_time(pid) in (None, start)


@dataclass(frozen=True)
class Recovered:
    run_id: str
    job_name: str
    pid: int


def recover(instance: dg.DagsterInstance, scratch_dir: Path | None = None) -> list[Recovered]:
    """Mark failed the in-process runs of this host whose process is gone, free their pool slots and
    remove their scratch files. Returns what was recovered."""
    host = socket.gethostname()
    recovered: list[Recovered] = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, tags={HOST_TAG: host})):
        pid_text = run.tags.get(PID_TAG, "")
        if not pid_text.isdigit() or process_alive(int(pid_text), run.tags.get(PID_START_TAG)):
            continue
        instance.report_run_failed(
            run,
            message=f"the media-routes process (pid {pid_text} on {host}) running this run is gone (killed or "
            "crashed); marked failed and its pool slots freed by the next media-routes command",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(Recovered(run.run_id, run.job_name, int(pid_text)))
    if scratch_dir is not None:
        sweep_scratch(instance, scratch_dir)
    return recovered


def sweep_scratch(instance: dg.DagsterInstance, scratch_dir: Path) -> list[Path]:
    """Remove scratch files (named ``<run id>-...``) of runs that are no longer in progress."""
    removed: list[Path] = []
    if not scratch_dir.is_dir():
        return removed
    for path in scratch_dir.iterdir():
        run_id = path.name[:36]
        if len(run_id) != 36 or run_id.count("-") != 4 or not path.is_file():
            continue
        run = instance.get_run_by_id(run_id)
        if run is None or run.status not in IN_PROGRESS:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------------
# A run waiting on a pool: say who holds the slots
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    run_id: str
    step_key: str
    job_name: str  # "?" when the run is not in this instance's run storage
    status: str
    where: str  # "pid 123 on host" for a media-routes process, "the daemon" otherwise


@dataclass(frozen=True)
class PoolWait:
    pool: str
    limit: int | None
    run_id: str
    step_key: str
    holders: tuple[Holder, ...]

    def line(self) -> str:
        held = "; ".join(
            f"run {h.run_id} ({h.job_name}, {h.status.lower()}, step {h.step_key}, {h.where})" for h in self.holders
        )
        limit = "no slots" if not self.limit else f"limit {self.limit}"
        return f"step {self.step_key} of run {self.run_id} is waiting for a '{self.pool}' slot ({limit}): " + (
            f"held by {held}" if held else "no run holds one (`dagster instance concurrency set` to raise it)"
        )


def _where(run: dg.DagsterRun | None) -> str:
    if run is None:
        return "unknown run"
    pid = run.tags.get(PID_TAG)
    return f"media-routes pid {pid} on {run.tags.get(HOST_TAG, '?')}" if pid else "the daemon or the UI"


def pool_waits(
    instance: dg.DagsterInstance, pools: list[str] | None = None, run_ids: set[str] | None = None
) -> list[PoolWait]:
    """The steps (of ``run_ids``, or of every run) waiting for a slot of one of ``pools`` (default: every pool
    the instance knows: ``local_engine``, ``provider_*``), with who holds the slots."""
    waits: list[PoolWait] = []
    if pools is None:
        pools = sorted(instance.event_log_storage.get_concurrency_keys())
    for pool, info in instance.event_log_storage.get_concurrency_infos(pools).items():
        waiting = [
            s for s in info.pending_steps if s.assigned_timestamp is None and (run_ids is None or s.run_id in run_ids)
        ]
        if not waiting:
            continue
        holder_runs = {r.run_id: r for r in instance.get_runs(dg.RunsFilter(run_ids=list(info.active_run_ids)))}
        holders = tuple(
            Holder(
                run_id=slot.run_id,
                step_key=slot.step_key,
                job_name=holder_runs[slot.run_id].job_name if slot.run_id in holder_runs else "?",
                status=holder_runs[slot.run_id].status.value if slot.run_id in holder_runs else "UNKNOWN",
                where=_where(holder_runs.get(slot.run_id)),
            )
            for slot in info.claimed_slots
        )
        for step in waiting:
            waits.append(PoolWait(pool, info.limit, step.run_id, step.step_key, holders))
    return waits


@contextmanager
def watch_pool_waits(
    instance: dg.DagsterInstance, report: Callable[[str], None], every_s: float = 3.0, pools: list[str] | None = None
) -> Iterator[None]:
    """While the block runs (an in-process run of this process), report each new wait of its runs on a pool,
    once per change of the holders: a run blocked behind another process's slots is never silent."""
    stop = threading.Event()
    mine = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}

    def watch() -> None:
        said: set[tuple[str, str, tuple[str, ...]]] = set()
        while not stop.wait(every_s):
            try:
                runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, tags=mine))
                for wait in pool_waits(instance, pools, {r.run_id for r in runs}):
                    key = (wait.pool, wait.step_key, tuple(h.run_id for h in wait.holders))
                    if key not in said:
                        said.add(key)
                        report(wait.line())
            except Exception:  # noqa: BLE001 - a progress message must never break the run it describes
                continue

    thread = threading.Thread(target=watch, name="pool-wait-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 5)
