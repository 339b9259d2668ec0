"""The three test tiers and the checks that keep every test in the right one (imported by conftest.py).

* fast (no marker): ``pytest -m "not integration and not deployment"``;
* ``integration``: the test runs Dagster runs in-process (``materialize_stages``, ``dg.materialize``,
  ``execute_in_process``, the CLI's demo ...);
* ``deployment``: the test starts services (dagster-webserver, dagster-daemon, a code server, chromium,
  PostgreSQL, moto's S3 server).

Forgetting a marker cannot go unnoticed: collection fails for a test that takes the run fixtures
(``instance`` with ``resources`` or ``hosted``) without ``integration``, or a service fixture without
``deployment``; and a test without either marker that starts a Dagster run anyway fails at that moment
(``DagsterInstance.create_run_for_job``, which every in-process run goes through, refuses it).
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

TIERS = ("integration", "deployment")
RUN_FIXTURES = {"resources", "hosted"}  # with ``instance``; ``rendered`` (shared_render.py) on its own
SERVICE_FIXTURES = {"deployment", "pg", "pg_url", "s3_url", "bucket", "s3_endpoint"}


def _marks(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers()} & set(TIERS)


def tier_problems(items: list[pytest.Item]) -> list[str]:
    problems = []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marks = _marks(item)
        if names & SERVICE_FIXTURES and "deployment" not in marks:
            problems.append(f"{item.nodeid}: uses {sorted(names & SERVICE_FIXTURES)}, mark it deployment")
        runs = ("instance" in names and names & RUN_FIXTURES) or "rendered" in names  # rendered_copy needs it
        if runs and not marks:
            problems.append(f"{item.nodeid}: uses the Dagster-run fixtures, mark it integration")
    return problems


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError("tests in the wrong tier (media_routes_tests/tiers.py):\n" + "\n".join(problems))
    # the long deployment tests first, the longest two first of all (stable otherwise): under xdist they start
    # at once, one on each worker, while the rest fills in around them
    items.sort(key=_order)


SLOWEST = ("test_rehearsal.py", "test_deployment_ui.py")


def _order(item: pytest.Item) -> int:
    if item.get_closest_marker("deployment") is None:
        return len(SLOWEST) + 1
    name = item.path.name
    return SLOWEST.index(name) if name in SLOWEST else len(SLOWEST)


@pytest.fixture(autouse=True)
def _dagster_runs_only_in_marked_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test of the fast tier that starts a Dagster run fails: it belongs to ``integration``."""
    if _marks(request.node):
        yield
        return
    nodeid = request.node.nodeid

    def refuse(self: dg.DagsterInstance, *args: object, **kwargs: object) -> None:
        pytest.fail(f"{nodeid} starts a Dagster run: mark it @pytest.mark.integration", pytrace=False)

    with pytest.MonkeyPatch.context() as mp:
        for method in ("create_run_for_job", "create_run"):  # in-process runs use the first, launched the second
            mp.setattr(dg.DagsterInstance, method, refuse)
        yield
