"""Rehearse the production topology on one machine (issue #7), then tear it all down.

    python deploy/rehearse.py [--root DIR] [--campaigns N] [--json]

``deploy/rehearse.py`` is the command line; this module is the rehearsal itself, imported by the tests
(``media_routes_tests/test_rehearsal.py``). It reads ``deploy/dagster.yaml`` and the example campaigns from
the repository (``media_routes.settings.REPO_ROOT``): run it from a source checkout. Never used in production.

Starts on 127.0.0.1, each as its own process:

* PostgreSQL (Debian's package: ``initdb`` / ``postgres`` from /usr/lib/postgresql/<N>/bin, run as the
  ``postgres`` user when this runs as root) holding the Dagster instance (runs, event log, schedules);
* an S3-compatible server (moto's server mode) holding the media (``MEDIA_ROUTES_MEDIA_STORE=s3``) and the
  compute logs (``S3ComputeLogManager``);
* a stand-in for the hosted image provider (the Gemini contract stub,
  :mod:`media_routes.testing.stubs.google_stub`, in this process), so the base composition is a paid call
  that must never be paid twice;
* the code server (``dagster code-server start -m media_routes.definitions``), and ``dagster-webserver``
  and ``dagster-daemon`` with a workspace that points at it over gRPC.

The instance config is ``deploy/dagster.yaml`` itself, with two sections swapped for what one machine
has: ``run_launcher`` becomes the ``DefaultRunLauncher`` (runs as processes of the code server instead of
ECS tasks) and the compute logs point at the S3 server's endpoint. Everything else (Postgres storage, run
queue and tag limits, pools, run monitoring and retries) is the production file.

Then it registers campaigns (specs dropped into the campaigns folder; the folder sensor registers them),
launches a backfill of the campaign stages over several campaigns through GraphQL's
``launchPartitionBackfill``, waits, and checks: at least two runs executed at once; every run and
materialization is in Postgres (read with plain SQL); every materialized file is in the bucket with the
content hash its metadata names; the ledger has exactly the provider calls the provider saw. Faults:
Postgres is restarted between two backfills (the second re-makes everything from the call cache: zero new
provider calls, the first backfill's history intact); a run worker is killed right after its paid provider
call, in the middle of a stage (the code server marks the run failed, the daemon retries it, the retry takes
the paid result from the call cache: no second payment, every output whole); the S3 endpoint refuses
connections for 8 s while a run writes its media (a loopback forwarder in front of the server is stopped, so
the data survive; boto3's retries and the stage retry policy ride it out, outputs whole, nothing paid
twice). Finally everything is stopped and the script checks that no process it started is left and no port
is still open.

Exit status 0 when every check passed; the figures are printed (``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from media_routes.settings import REPO_ROOT as REPO
from media_routes.stages import CAMPAIGN_STAGES
from media_routes.testing.campaigns import FAST, write_campaign
from media_routes.testing.daemon import ENV_LOOP_S as DAEMON_LOOP_ENV
from media_routes.testing.stubs.google_stub import GoogleStub

BIN = Path(sys.executable).parent

GEMINI_KEY = "rehearsal-gemini-KEY-0123456789abcdef"  # a stand-in key, only ever sent to the local stub
BUCKET = "media-routes-rehearsal"
LOG_BUCKET = "media-routes-rehearsal-logs"
PG_USER, PG_DB = "dagster", "dagster"
STATE_DB = "media_routes_state"  # call cache index and credit ledger, beside the Dagster instance


class RehearsalFailed(AssertionError):
    """A check of the rehearsal did not hold (the message says which, with the services' log tails)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise RehearsalFailed(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Service:
    """One process of the topology, in its own session so it is stopped with everything it spawned."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str]
    user: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    pids: set[int] = field(default_factory=set)

    def start(self) -> Service:
        cmd = self.cmd
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        fh = open(self.log, "ab")  # noqa: SIM115 - kept open for the process' lifetime
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pids.add(self.proc.pid)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # whatever the group spawned (run workers, API servers) goes too
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def tail(self, n: int = 40) -> str:
        if not self.log.exists():
            return ""
        return f"--- {self.name}\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise RehearsalFailed("PostgreSQL server binaries not found: install Debian's package (apt-get install postgresql)")


@dataclass
class Postgres:
    bin: Path
    data: Path
    port: int
    password: str
    log: Path
    user: str | None  # the OS user the server runs as (postgres refuses root)

    def _run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def init(self) -> None:
        pwfile = self.data.parent / "pgpass"
        pwfile.write_text(self.password + "\n")
        if self.user:
            shutil.chown(self.data.parent, self.user)
            shutil.chown(pwfile, self.user)
        res = self._run(
            self.bin / "initdb",
            "-D",
            self.data,
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
        )
        pwfile.unlink()
        if res.returncode != 0:
            raise RehearsalFailed(f"initdb failed: {res.stdout}\n{res.stderr}")

    def start(self) -> None:
        sock = self.data.parent
        res = self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
            "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {sock}", "start",
        )  # fmt: skip
        if res.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else "(no server log)"
            raise RehearsalFailed(f"postgres did not start: {res.stdout}\n{res.stderr}\n{log}")

    def stop(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def connect(self) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, password=self.password, dbname=PG_DB, connect_timeout=10
        )

    def create_db(self, name: str = PG_DB) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, password=self.password, dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()

    def url(self, db: str) -> str:
        return f"postgresql+psycopg2://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{db}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()


@contextmanager
def postgres(logs: Path) -> Iterator[Postgres]:
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RehearsalFailed("running as root needs the 'postgres' user of Debian's postgresql package") from None
        user = "postgres"
    top = Path(tempfile.mkdtemp(prefix="media-routes-pg-"))  # outside the root-only temp dirs: postgres reads it
    pg = Postgres(
        bin=postgres_bin(),
        data=top / "data",
        port=free_port(),
        password=hashlib.sha256(os.urandom(16)).hexdigest()[:24],
        log=top / "postgres.log",  # the server (as postgres) may not reach ``logs`` (a root-only temp dir)
        user=user,
    )
    try:
        pg.init()
        pg.start()
        pg.create_db()
        pg.create_db(STATE_DB)
        yield pg
    finally:
        pg.stop()
        if pg.log.exists():
            shutil.copy(pg.log, logs / "postgres.log")
        shutil.rmtree(top, ignore_errors=True)


# -- S3 (moto server) -----------------------------------------------------------------------------------------


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="rehearsal",
        aws_secret_access_key="rehearsal",
    )


class TcpForwarder:
    """A loopback TCP forwarder in front of the S3 server: ``stop()`` makes the endpoint refuse connections
    (and cuts the open ones) while the server and its data stay; ``start()`` brings it back on the same port."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._srv: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._srv = srv
        threading.Thread(target=self._accept, args=(srv,), name="s3-forwarder", daemon=True).start()

    def stop(self) -> None:
        srv, self._srv = self._srv, None
        if srv is not None:
            try:
                srv.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            srv.close()
        with self._lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._open.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)


# -- the topology ---------------------------------------------------------------------------------------------


def instance_yaml(home: Path, s3_endpoint: str) -> None:
    """deploy/dagster.yaml with the ECS launcher and the compute logs' endpoint swapped for this machine."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    config["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    config["compute_logs"]["config"]["endpoint_url"] = s3_endpoint
    config["compute_logs"]["config"]["local_dir"] = str(home / "compute-logs")
    config["run_monitoring"]["poll_interval_seconds"] = 5  # the kill fault is detected within seconds, not a minute
    config["run_monitoring"]["max_resume_run_attempts"] = 0  # DefaultRunLauncher cannot resume: fail, then retry
    config["run_retries"]["retry_on_asset_or_op_failure"] = False
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Topology:
    root: Path
    env: dict[str, str]
    pg: Postgres
    s3_endpoint: str
    url: str
    services: dict[str, Service]
    google: Any  # the Gemini contract stub
    ports: list[int]
    s3_front: TcpForwarder | None = None

    server_errors: int = 0  # 5xx answers seen (each retried)

    def graphql(self, query: str, variables: dict[str, Any] | None = None, retry_s: float = 60) -> dict[str, Any]:
        """POST a GraphQL request; a 5xx (a webserver whose database connection was just cut) is retried."""
        deadline = time.monotonic() + retry_s
        while True:
            r = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
            if r.status_code < 500 or time.monotonic() > deadline:
                break
            self.server_errors += 1
            time.sleep(2)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RehearsalFailed(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def instance(self) -> Any:
        import dagster as dg

        before = {k: os.environ.get(k) for k in self.env if k.startswith("DAGSTER_")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_")})
        try:
            return dg.DagsterInstance.get()
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def logs(self) -> str:
        parts = [s.tail() for s in self.services.values()]
        if self.pg.log.exists():
            parts.append("--- postgres\n" + "\n".join(self.pg.log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(parts)


@contextmanager
def topology(root: Path) -> Iterator[Topology]:
    root.mkdir(parents=True, exist_ok=True)
    logs, home, campaigns = root / "logs", root / "dagster_home", root / "campaigns"
    for d in (logs, home, campaigns):
        d.mkdir(exist_ok=True)
    with ExitStack() as stack:
        pg = stack.enter_context(postgres(logs))
        google = stack.enter_context(GoogleStub(api_key=GEMINI_KEY))
        s3_port, code_port, web_port = free_port(), free_port(), free_port()
        s3_front = TcpForwarder(s3_port)  # what every client uses: the outage fault stops it, not the server
        s3_endpoint = f"http://127.0.0.1:{s3_front.port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MEDIA_ROUTES_"))},
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_USERNAME": PG_USER,
            "DAGSTER_PG_PASSWORD": pg.password,
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(pg.port),
            "DAGSTER_PG_DB": PG_DB,
            "DAGSTER_LOG_BUCKET": LOG_BUCKET,
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "MEDIA_ROUTES_ENV": "rehearsal",  # media_routes/defs/environment.py checks the shared backends are set
            "MEDIA_ROUTES_MEDIA_STORE": "s3",
            "MEDIA_ROUTES_S3_BUCKET": BUCKET,
            "MEDIA_ROUTES_S3_PREFIX": "media",
            "MEDIA_ROUTES_S3_ENDPOINT_URL": s3_endpoint,
            "MEDIA_ROUTES_CAMPAIGNS_DIR": str(campaigns),
            "MEDIA_ROUTES_STATE_DIR": str(root / "state"),  # route health and client slots only
            "MEDIA_ROUTES_STATE_DB_URL": pg.url(STATE_DB),  # cache index + ledger on Postgres, advisory key locks
            "MEDIA_ROUTES_STATE_S3_BUCKET": BUCKET,  # cached provider results on S3
            "MEDIA_ROUTES_MEDIA_ROOT": str(root / "media-cache"),
            "MEDIA_ROUTES_AUTOMATION": "stopped",  # runs come from the backfills only
            "MEDIA_ROUTES_SENSOR_INTERVAL_S": os.environ.get("MEDIA_ROUTES_SENSOR_INTERVAL_S", "30"),  # tests: 5
            # the backfill daemon's loop (media_routes/testing/daemon.py): Dagster's 30 s unless a test shortens it
            DAEMON_LOOP_ENV: os.environ.get(DAEMON_LOOP_ENV, ""),
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "rehearsal",
            "AWS_SECRET_ACCESS_KEY": "rehearsal",
            "GEMINI_API_KEY": GEMINI_KEY,
            "GEMINI_BASE_URL": google.url,
            "PYTHONUNBUFFERED": "1",
        }
        for key in ("FAL_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY"):
            env.pop(key, None)  # only the stubbed provider is reachable
        instance_yaml(home, s3_endpoint)
        workspace = root / "workspace.yaml"
        workspace.write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {"grpc_server": {"host": "127.0.0.1", "port": code_port, "location_name": "media_routes"}}
                    ]
                }
            )
        )
        services = {
            "s3": Service(
                "s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], logs / "s3.log", env
            ),
            "code": Service(
                "code",
                [
                    str(BIN / "dagster"),
                    "code-server",
                    "start",
                    "-m",
                    "media_routes.definitions",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(code_port),
                    "--location-name",
                    "media_routes",
                ],
                logs / "code-server.log",
                env,
            ),  # fmt: skip
            "webserver": Service(
                "webserver",
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", str(workspace)],
                logs / "webserver.log",
                env,
            ),
            "daemon": Service(
                "daemon",
                [sys.executable, "-m", "media_routes.testing.daemon", "run", "-w", str(workspace)],
                logs / "daemon.log",
                env,
            ),
        }
        for svc in services.values():
            stack.callback(svc.stop)
        services["s3"].start()
        wait_until(lambda: port_open(s3_port), 60, "the S3 server")
        s3_front.start()
        stack.callback(s3_front.stop)
        s3 = s3_client(s3_endpoint)
        for bucket in (BUCKET, LOG_BUCKET):
            s3.create_bucket(Bucket=bucket)
        services["code"].start()
        wait_until(lambda: port_open(code_port), 180, "the code server")
        services["webserver"].start()
        services["daemon"].start()
        url = f"http://127.0.0.1:{web_port}"

        def answering() -> bool:
            for svc in services.values():
                if not svc.alive():
                    raise RehearsalFailed(f"{svc.name} exited early\n{svc.tail()}")
            try:
                return httpx.get(f"{url}/server_info", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answering, 180, "the webserver")
        topo = Topology(
            root=root,
            env=env,
            pg=pg,
            s3_endpoint=s3_endpoint,
            url=url,
            services=services,
            google=google,
            ports=[pg.port, s3_port, s3_front.port, code_port, web_port],
            s3_front=s3_front,
        )
        try:
            yield topo
        except BaseException:
            print(topo.logs(), file=sys.stderr)
            raise


# -- the rehearsal --------------------------------------------------------------------------------------------

LAUNCH = """
mutation($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PartitionSetNotFoundError { message }
  }
}
"""
STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status numPartitions } ... on PythonError { message } } }
"""


def write_campaigns(folder: Path, ids: list[str], seed: int | None = None) -> None:
    """Copies of the example campaigns, small and fast, with the base on the (stubbed) hosted route."""
    sources = ["noir-sneaker", "atrium-residences"]
    extra: dict[str, Any] = {} if seed is None else {"seed": seed}  # another seed: another (unpaid) call
    for i, cid in enumerate(ids):
        write_campaign(folder, sources[i % 2], cid, formats=["1x1"], route={"profile": "brand-safe"}, **FAST, **extra)


def backfill(topo: Topology, partitions: list[str], stages: Sequence[str], title: str, timeout: float = 900) -> str:
    params = {
        "assetSelection": [{"path": [s]} for s in stages],
        "partitionNames": partitions,
        "title": title,
        "tags": [{"key": "media_routes/trigger", "value": "rehearsal"}],
    }
    answer = topo.graphql(LAUNCH, {"p": params})["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RehearsalFailed(f"backfill not launched: {answer}")
    backfill_id = str(answer["backfillId"])
    if timeout == 0:
        return backfill_id  # launched only; wait_backfill() waits
    wait_backfill(topo, backfill_id, title, timeout)
    return backfill_id


def wait_backfill(topo: Topology, backfill_id: str, title: str, timeout: float = 900) -> None:
    def done() -> bool:
        status = topo.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        if status in ("FAILED", "CANCELED", "COMPLETED_FAILED"):
            raise RehearsalFailed(f"backfill {title!r} ended {status}\n{topo.logs()}")
        return bool(status == "COMPLETED_SUCCESS")

    wait_until(done, timeout, f"backfill {title!r}", every=3)


def overlapping_runs(records: list[Any]) -> int:
    """The most runs that were executing at the same moment (from their start and end times)."""
    events = []
    for r in records:
        if r.start_time and r.end_time:
            events += [(r.start_time, 1), (r.end_time, -1)]
    peak = cur = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        cur += delta
        peak = max(peak, cur)
    return peak


def check_bucket(topo: Topology, instance: Any, campaigns: list[str]) -> int:
    """Every latest materialization's file is in the bucket with the hash its metadata names; returns the count."""
    from media_routes.lineage import latest_record

    s3 = s3_client(topo.s3_endpoint)
    checked = 0
    for cid in campaigns:
        for stage in CAMPAIGN_STAGES:
            record = latest_record(instance, stage, cid)
            if record is None or record.asset_materialization is None:
                raise RehearsalFailed(f"{stage}[{cid}] was not materialized")
            meta = record.asset_materialization.metadata
            uri = str(meta["dagster/uri"].value)
            if not uri.startswith(f"s3://{BUCKET}/"):
                raise RehearsalFailed(f"{stage}[{cid}] is not in the bucket: {uri}")
            body = s3.get_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
            if hashlib.sha256(body).hexdigest() != str(meta["output_hash"].value):
                raise RehearsalFailed(f"{stage}[{cid}]: the object in the bucket does not match its output_hash")
            checked += 1
    return checked


def ledger_rows(topo: Topology) -> list[dict[str, Any]]:
    """The hosted calls and hits in the ledger the run workers share (on Postgres here)."""
    from media_routes.credits.backends import PostgresDB
    from media_routes.credits.ledger import Ledger, PriceTable

    frame = Ledger(PostgresDB(topo.env["MEDIA_ROUTES_STATE_DB_URL"]), PriceTable.from_yaml()).frame()
    return [row for row in frame.to_dict("records") if row["provider"] != "local"]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _paid_rows(topo: Topology, campaign: str) -> int:
    return sum(1 for r in ledger_rows(topo) if r["campaign"] == campaign and not r["hit"])


def kill_a_run_worker_mid_stage(topo: Topology, campaign: str, report: dict[str, Any]) -> None:
    """Kill the run worker of ``campaign``'s run right after its paid provider call, then watch the recovery.

    The code server marks the orphaned run failed, the daemon retries it (``run_retries``), the retry takes
    the paid result from the call cache: the provider is not paid again and every output is whole.
    """
    import dagster as dg

    write_campaigns(Path(topo.env["MEDIA_ROUTES_CAMPAIGNS_DIR"]), [campaign], seed=4242)
    with topo.instance() as instance:
        wait_until(lambda: campaign in instance.get_dynamic_partitions("campaign"), 180, f"partition {campaign}")
    code_pid = topo.services["code"].proc.pid  # type: ignore[union-attr]
    before = descendants(code_pid)
    calls_before = topo.google.calls("generateContent")
    params = {
        "assetSelection": [{"path": [s]} for s in CAMPAIGN_STAGES],
        "partitionNames": [campaign],
        "title": "rehearsal: a run worker killed mid-stage",
    }
    answer = topo.graphql(LAUNCH, {"p": params})["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RehearsalFailed(f"backfill not launched: {answer}")
    wait_until(lambda: _paid_rows(topo, campaign) > 0, 300, f"the paid call of {campaign}", every=0.2)
    workers = descendants(code_pid) - before
    if not workers:
        raise RehearsalFailed("no run worker process found under the code server")
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    report["killed_processes"] = len(workers)
    paid_at_kill = topo.google.calls("generateContent") - calls_before
    with topo.instance() as instance:
        backfill_runs = lambda: instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": answer["backfillId"]}))  # noqa: E731
        (killed,) = wait_until(backfill_runs, 30, "the killed run")

        def retried() -> Any:
            run = instance.get_run_by_id(killed.run_id)
            if run is None or run.status != dg.DagsterRunStatus.FAILURE:
                return None
            children = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": killed.run_id}))
            if children and children[0].status == dg.DagsterRunStatus.FAILURE:
                raise RehearsalFailed(f"the retry of the killed run failed\n{topo.logs()}")
            return children[0] if children and children[0].status == dg.DagsterRunStatus.SUCCESS else None

        retry = wait_until(retried, 600, "the killed run to fail and its retry to succeed", every=2)
        report["killed_run"] = killed.run_id
        report["retry_run"] = retry.run_id
        report["paid_calls_before_kill"] = paid_at_kill
        rows = [r for r in ledger_rows(topo) if r["campaign"] == campaign]
        paid = [r for r in rows if not r["hit"]]
        keys_paid_before = {r["call_key"] for r in paid if r["run_id"] == killed.run_id}
        hits_in_retry = {r["call_key"] for r in rows if r["hit"] and r["run_id"] == retry.run_id}
        report["paid_calls_of_retry"] = len(paid) - len(keys_paid_before)  # stages the killed run never reached
        report["keys_paid_twice"] = len(paid) - len({r["call_key"] for r in paid})
        if report["keys_paid_twice"] or not keys_paid_before or not keys_paid_before <= hits_in_retry:
            raise RehearsalFailed(f"the retry of the killed run paid a call again: {rows}")
        provider_calls = topo.google.calls("generateContent") - calls_before
        if provider_calls != len(paid):
            raise RehearsalFailed(f"the provider saw {provider_calls} calls for {campaign}, the ledger {len(paid)}")
        check_bucket(topo, instance, [campaign])  # every output whole and hash-checked


OUTAGE_S = 8.0


def s3_outage_mid_run(topo: Topology, campaign: str, report: dict[str, Any]) -> None:
    """The S3 endpoint refuses connections for ``OUTAGE_S`` seconds while a run writes its media.

    Started right after the run's paid provider call (its result already stored), so what the outage hits is
    the stages' writes and reads; boto3's retries and the stage retry policy have to ride it out. After it:
    the backfill succeeded, every output is whole in the bucket, no call was paid twice.
    """
    import dagster as dg

    assert topo.s3_front is not None
    write_campaigns(Path(topo.env["MEDIA_ROUTES_CAMPAIGNS_DIR"]), [campaign], seed=777)
    with topo.instance() as instance:
        wait_until(lambda: campaign in instance.get_dynamic_partitions("campaign"), 180, f"partition {campaign}")
    calls_before = topo.google.calls("generateContent")
    backfill_id = backfill(topo, [campaign], CAMPAIGN_STAGES, "rehearsal: S3 outage", timeout=0)
    wait_until(lambda: _paid_rows(topo, campaign) > 0, 300, f"the paid call of {campaign}", every=0.2)
    topo.s3_front.stop()
    refused = not port_open(topo.s3_front.port)
    time.sleep(OUTAGE_S)
    topo.s3_front.start()
    report["s3_outage_s"] = OUTAGE_S
    if not refused:
        raise RehearsalFailed("the S3 endpoint still answered during the outage")
    wait_backfill(topo, backfill_id, "rehearsal: S3 outage")
    with topo.instance() as instance:
        (run,) = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        events = [e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event]
        report["step_retries_during_s3_outage"] = events.count("STEP_UP_FOR_RETRY")
        check_bucket(topo, instance, [campaign])  # whole and hash-checked after the outage
    paid = [r for r in ledger_rows(topo) if r["campaign"] == campaign and not r["hit"]]
    report["keys_paid_twice_s3_outage"] = len(paid) - len({r["call_key"] for r in paid})
    if report["keys_paid_twice_s3_outage"] or topo.google.calls("generateContent") - calls_before != len(paid):
        raise RehearsalFailed(f"a call was paid twice across the S3 outage: {paid}")


def rehearse(root: Path, campaigns: int = 3) -> dict[str, Any]:
    """The whole rehearsal; returns its figures, raises :class:`RehearsalFailed` on the first broken check."""
    import dagster as dg

    ids = [f"rehearsal-{i}" for i in range(campaigns)]
    report: dict[str, Any] = {"campaigns": ids}
    started = time.monotonic()
    with topology(root) as topo:
        report["startup_s"] = round(time.monotonic() - started, 1)
        # register campaigns: drop their specs in, the folder sensor (daemon) makes them partitions
        write_campaigns(Path(topo.env["MEDIA_ROUTES_CAMPAIGNS_DIR"]), ids)
        with topo.instance() as instance:
            wait_until(lambda: sorted(instance.get_dynamic_partitions("campaign")) == ids, 180, "campaign partitions")

        t0 = time.monotonic()
        first = backfill(topo, ids, CAMPAIGN_STAGES, "rehearsal: campaign stages")
        report["backfill_s"] = round(time.monotonic() - t0, 1)
        calls_first = topo.google.calls("generateContent")
        with topo.instance() as instance:
            records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": first}))
            report["runs"] = len(records)
            report["peak_concurrent_runs"] = overlapping_runs(records)
            if report["peak_concurrent_runs"] < 2:
                raise RehearsalFailed(f"no two runs executed at once: {report['peak_concurrent_runs']}")
            report["objects_checked"] = check_bucket(topo, instance, ids)
        # the instance is Postgres: read it with plain SQL
        pg_runs = dict(topo.pg.query("SELECT status, count(*) FROM runs GROUP BY status"))
        pg_mats = topo.pg.query("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        report["postgres_runs"] = pg_runs
        report["postgres_materializations"] = int(pg_mats[0][0])
        if pg_runs.get("SUCCESS", 0) < len(ids) or report["postgres_materializations"] < len(ids) * len(
            CAMPAIGN_STAGES
        ):
            raise RehearsalFailed(f"Postgres holds fewer runs or materializations than made: {pg_runs}, {pg_mats}")
        paid = [r for r in ledger_rows(topo) if not r["hit"]]
        report["provider_calls"] = calls_first
        report["ledger_paid_calls"] = len(paid)
        if calls_first == 0 or len(paid) != calls_first:
            raise RehearsalFailed(f"the ledger's paid calls ({len(paid)}) differ from the provider's ({calls_first})")
        # the credits state is the shared one: ledger and cache index in Postgres, results in the bucket
        local = [p.name for p in Path(topo.env["MEDIA_ROUTES_STATE_DIR"]).rglob("*") if p.name.endswith(".sqlite")]
        cached = s3_client(topo.s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="call-cache/").get("KeyCount", 0)
        report["cached_results_in_bucket"] = cached
        if {"ledger.sqlite", "calls.sqlite"} & set(local) or cached < calls_first:
            raise RehearsalFailed(f"credits state not shared: local {local}, {cached} cached results in the bucket")

        # fault: Postgres restarts between runs; a second backfill re-makes everything from the call cache
        topo.pg.restart()
        errors_before = topo.server_errors
        second = backfill(topo, ids, CAMPAIGN_STAGES, "rehearsal: after a Postgres restart")
        report["webserver_5xx_after_postgres_restart"] = topo.server_errors - errors_before
        report["calls_after_postgres_restart"] = topo.google.calls("generateContent") - calls_first
        if report["calls_after_postgres_restart"] != 0:
            raise RehearsalFailed("the second backfill paid the provider again")
        with topo.instance() as instance:
            for bid in (first, second):
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": bid}))
                if len(runs) != len(ids) or any(r.status != dg.DagsterRunStatus.SUCCESS for r in runs):
                    raise RehearsalFailed(f"backfill {bid}: runs missing or failed after the restart")
            check_bucket(topo, instance, ids)
        report["postgres_runs_after_restart"] = dict(topo.pg.query("SELECT status, count(*) FROM runs GROUP BY status"))

        # fault: a run worker is killed in the middle of a stage, after its paid provider call
        kill_a_run_worker_mid_stage(topo, f"rehearsal-{campaigns}", report)

        # fault: the object store goes away for a moment while a run writes
        s3_outage_mid_run(topo, f"rehearsal-{campaigns + 1}", report)
        report["ports"] = topo.ports
        pids = {pid for svc in topo.services.values() for pid in svc.pids}
    # torn down: nothing left listening, no process of ours alive
    left = [p for p in report["ports"] if port_open(p)]
    alive = [pid for pid in pids if _alive(pid)]
    if left or alive:
        raise RehearsalFailed(f"left behind: ports {left}, processes {alive}")
    report["total_s"] = round(time.monotonic() - started, 1)
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie already reaped by nobody still answers kill(0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="working folder (default: a new temporary folder, removed)")
    parser.add_argument("--campaigns", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="media-routes-rehearsal-"))
    try:
        report = rehearse(root, args.campaigns)
    except RehearsalFailed as exc:
        print(f"rehearsal FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
