"""Crash recovery for runs the command line executes in its own process.

``media-routes`` runs jobs in-process (:func:`media_routes.pipeline.materialize_stages`). If that
process is killed (SIGKILL, a closed laptop lid, an out-of-memory kill), its run stays STARTED and
keeps its ``local_engine`` pool slot, and nothing in Dagster notices: run monitoring watches runs
that a run launcher started, not in-process ones. Two such crashes and every later run of the
instance waits on the pool (its limit is 2) forever.

So every in-process run is tagged with the host, the process id and that process's start time,
and every command first calls :func:`recover` on its instance. A run still STARTED whose process
is gone from this host is marked failed, with a message saying why, and its pool slots are
freed. Temp files that such a run left in the media store's scratch folder are removed. The start
time protects against pid reuse: a new process with the same pid does not count as the old one.
Runs started by the daemon carry no such tags and stay with run monitoring.
"""

from __future__ import annotations

import os
import socket
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
