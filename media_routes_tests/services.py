"""A real local Dagster deployment for tests: dagster-webserver + dagster-daemon on 127.0.0.1.

Both load the repository's own ``workspace.yaml`` and ``dagster.yaml`` (copied into a temporary
DAGSTER_HOME), with the campaigns folder and media root pointed at temporary folders. Processes
run in their own session and are killed as a group on exit, so nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import httpx

from media_routes.testing import rehearsal
from media_routes.testing.daemon import ENV_LOOP_S as DAEMON_LOOP_ENV

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    url: str
    home: Path
    campaigns_dir: Path
    media_root: Path
    logs: Path
    env: dict[str, str]

    def instance(self) -> dg.DagsterInstance:
        """The same instance the services use (SQLite under ``home``), opened from this process."""
        before = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(self.home)  # dagster.yaml reads its storage dir from it
        try:
            return dg.DagsterInstance.get()
        finally:
            if before is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = before

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]  # type: ignore[no-any-return]

    def log_tail(self, n: int = 60) -> str:
        out = []
        for f in sorted(self.logs.glob("*.log")):
            lines = f.read_text(errors="replace").splitlines()[-n:]
            out.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(out)


def _wait_http(url: str, timeout: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args!r} exited with {p.returncode} before the webserver answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def local_deployment(root: Path, *, daemon: bool = True) -> Iterator[Deployment]:
    """Start webserver (+ daemon) for campaigns under ``root / 'campaigns'`` (created by the caller)."""
    home, logs = root / "dagster_home", root / "logs"
    home.mkdir(parents=True, exist_ok=True)
    logs.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    dep = Deployment(
        url=f"http://127.0.0.1:{port}",
        home=home,
        campaigns_dir=root / "campaigns",
        media_root=root / "media",
        logs=logs,
        env={
            **os.environ,
            "DAGSTER_HOME": str(home),
            "MEDIA_ROUTES_CAMPAIGNS_DIR": str(root / "campaigns"),
            "MEDIA_ROUTES_MEDIA_ROOT": str(root / "media"),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            "MEDIA_ROUTES_SENSOR_INTERVAL_S": "5",  # sensor and automation ticks every 5 s, not 30 (settings.py)
            DAEMON_LOOP_ENV: "5",  # the backfill daemon loops every 5 s, not Dagster's fixed 30 (testing/daemon.py)
        },
    )
    with dep.instance():  # create and stamp the SQLite storage once: webserver and daemon starting on an empty
        pass  # DAGSTER_HOME at once can both stamp it ("alembic_version has more than one head")
    workspace = str(REPO / "workspace.yaml")
    webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace]
    commands = {"dagster-webserver": webserver}  # name of its log file -> command
    if daemon:
        commands["dagster-daemon"] = [sys.executable, "-m", "media_routes.testing.daemon", "run", "-w", workspace]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, cmd in commands.items():
            log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(
                subprocess.Popen(
                    cmd, cwd=REPO, env=dep.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        _wait_http(f"{dep.url}/server_info", 120, procs)
        yield dep
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def wait_for(
    predicate: Any, *, timeout: float, every: float = 2.0, what: str = "condition", dep: Deployment | None = None
) -> Any:  # noqa: E501
    """Poll ``predicate`` until it returns a truthy value; fail with the services' logs on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + (dep.log_tail() if dep else ""))


def require_postgres() -> ModuleType:
    """:mod:`media_routes.testing.rehearsal` once PostgreSQL's server binaries are known to be there; else skip
    (fail instead when ``MEDIA_ROUTES_REQUIRE_POSTGRES=1``, as in CI)."""
    import pytest

    try:
        rehearsal.postgres_bin()
    except rehearsal.RehearsalFailed:
        if os.environ.get("MEDIA_ROUTES_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    return rehearsal
