"""Crash recovery (issue #15): a media-routes process killed mid-run leaves nothing blocked."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from media_routes.recovery import HOST_TAG, PID_START_TAG, PID_TAG, pool_waits, process_tags, recover, watch_pool_waits

REPO = Path(__file__).resolve().parent.parent


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = dg.DagsterRun(
        job_name="campaign_stills", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, tags=tags
    )
    instance.add_run(run)
    return run


def test_a_run_whose_process_is_gone_is_failed_and_frees_its_pool_slot(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("local_engine", 2)
        dead = _started_run(instance, {**process_tags(), PID_TAG: str(_dead_pid())})
        alive = _started_run(instance, process_tags())  # this process: still running
        reused = _started_run(instance, {**process_tags(), PID_START_TAG: "1"})  # same pid, another process
        daemon = _started_run(instance, {})  # launched by the daemon: run monitoring's business
        for run in (dead, alive, reused):
            storage.claim_concurrency_slot("local_engine", run.run_id, "base_composition")
        scratch = tmp_path / ".scratch"
        scratch.mkdir()
        (scratch / f"{dead.run_id}-shoe-9x16-0.mp4").write_bytes(b"partial")
        (scratch / f"{alive.run_id}-shoe-9x16-0.mp4").write_bytes(b"in progress")

        recovered = recover(instance, scratch)

        assert sorted(r.run_id for r in recovered) == sorted([dead.run_id, reused.run_id])
        status = {r.run_id: instance.get_run_by_id(r.run_id).status for r in (dead, alive, reused, daemon)}  # type: ignore[union-attr]
        assert status == {
            dead.run_id: dg.DagsterRunStatus.FAILURE,
            alive.run_id: dg.DagsterRunStatus.STARTED,
            reused.run_id: dg.DagsterRunStatus.FAILURE,
            daemon.run_id: dg.DagsterRunStatus.STARTED,
        }
        assert storage.get_concurrency_info("local_engine").active_run_ids == {alive.run_id}
        assert [p.name for p in scratch.iterdir()] == [f"{alive.run_id}-shoe-9x16-0.mp4"]
        failure = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "is gone (killed or crashed)" in failure[0].message
        assert recover(instance, scratch) == []  # once


def test_runs_of_another_host_are_left_alone() -> None:
    with dg.instance_for_test() as instance:
        other = _started_run(instance, {HOST_TAG: "another-host", PID_TAG: str(_dead_pid())})
        assert recover(instance) == []
        assert instance.get_run_by_id(other.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]


def _demo(home: Path, campaigns: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDIA_ROUTES_MEDIA_ROOT": str(home / "media")}
    cmd = [sys.executable, "-m", "media_routes.cli", "demo", "--campaigns-dir", str(campaigns), "--out", str(out)]
    return subprocess.Popen([*cmd, "--campaign", "tower"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".png", ".mp4")
    }


def _wait_for(predicate, timeout: float = 900.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_waiting_step_names_the_run_holding_the_pool() -> None:
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("local_engine", 1)
        holder = _started_run(instance, {HOST_TAG: "studio-1", PID_TAG: "4242"})
        waiter = _started_run(instance, process_tags())
        assert storage.claim_concurrency_slot("local_engine", holder.run_id, "base_composition").is_claimed
        assert not storage.claim_concurrency_slot("local_engine", waiter.run_id, "base_composition").is_claimed
        waits = pool_waits(instance, run_ids={waiter.run_id})
        assert len(waits) == 1
        line = waits[0].line()
        assert f"run {waiter.run_id} is waiting for a 'local_engine' slot (limit 1)" in line
        assert f"held by run {holder.run_id} (campaign_stills, started, step base_composition" in line
        assert "media-routes pid 4242 on studio-1" in line
        assert pool_waits(instance, run_ids={holder.run_id}) == []  # the holder waits for nothing


@pytest.mark.integration
def test_a_cli_run_blocked_by_another_runs_slot_says_so_then_runs(  # type: ignore[no-untyped-def]
    instance, resources
) -> None:
    """A real in-process run behind a slot another run holds: the watcher reports the holder while the run
    waits; once the slot is freed, the run goes on and succeeds."""
    import threading

    from media_routes.pipeline import materialize_stages

    storage = instance.event_log_storage
    storage.set_concurrency_slots("local_engine", 1)
    holder = _started_run(instance, {"dagster/backfill": "x"})
    assert storage.claim_concurrency_slot("local_engine", holder.run_id, "motion").is_claimed
    instance.add_dynamic_partitions("campaign", ["tower"])
    said: list[str] = []
    seen = threading.Event()

    def report(line: str) -> None:
        said.append(line)
        seen.set()

    def free_when_reported() -> None:
        seen.wait(120)  # then free it anyway, so a silent watcher fails the assertions below instead of hanging
        storage.free_concurrency_slots_for_run(holder.run_id)

    freer = threading.Thread(target=free_when_reported, daemon=True)
    freer.start()
    with watch_pool_waits(instance, report, every_s=0.5):
        summary = materialize_stages(instance, resources, ["base_composition"], "tower", raise_on_error=False)
    freer.join(5)
    assert summary.success
    assert len(said) == 1, said
    assert f"held by run {holder.run_id} (campaign_stills, started, step motion, the daemon or the UI)" in said[0]
    assert f"step base_composition of run {summary.run_id} is waiting for a 'local_engine' slot" in said[0]


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_a_demo_killed_mid_run_then_re_run_completes_with_the_same_deliverables(
    campaigns_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # for reading the killed demo's instance here
    clean = _demo(tmp_path / "clean-home", campaigns_dir, tmp_path / "clean-out")
    assert clean.wait(timeout=1500) == 0, clean.stdout.read().decode()  # type: ignore[union-attr]
    expected = _hashes(tmp_path / "clean-out")
    assert any(k.endswith(".mp4") for k in expected)

    home = tmp_path / "home"
    scratch = home / "media" / ".scratch"
    killed_in_encode: list[str] = []
    for point in ("a stills run", "a format run", "an encode"):
        proc = _demo(home, campaigns_dir, tmp_path / "out")

        def reached(proc: subprocess.Popen[bytes] = proc, point: str = point) -> bool:
            if proc.poll() is not None or not (home / "dagster.yaml").exists():
                return False
            if point == "an encode":  # a temp file of the video being written: look often, it lives briefly
                for _ in range(50):
                    names = [n for n in os.listdir(scratch) if n.endswith(".mp4")] if scratch.is_dir() else []
                    if names:
                        killed_in_encode.extend(names)
                        return True
                    time.sleep(0.004)
                return False
            import fcntl

            # the CLI creates the schema under this lock; hold it too, or both may create it at once
            with (home / ".instance.lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            job = "campaign_stills" if point == "a stills run" else "format_deliverables"
            return any(r.job_name == job for r in runs)

        _wait_for(reached)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert killed_in_encode and any((scratch / n).exists() for n in killed_in_encode)  # left behind by the kill
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))  # left behind
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    again = _demo(home, campaigns_dir, tmp_path / "out")
    output = again.communicate(timeout=1500)[0].decode()
    assert again.returncode == 0, output
    assert "marked failed, its pool slots freed" in output
    assert _hashes(tmp_path / "out") == expected
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert not instance.event_log_storage.get_concurrency_info("local_engine").active_run_ids
    assert not any((scratch / n).exists() for n in killed_in_encode)  # swept by the re-run
