"""One real render of the two small test campaigns per session, shared by the tests that start from it.

``rendered`` runs the whole graph once (per pytest-xdist worker) for the campaigns of ``campaigns_dir``
('shoe' in 9x16 and 1x1, 'tower' in 16x9), through the same ``materialize_stages`` as everything else, on an
on-disk SQLite instance. Tests that only read those outputs take it instead of rendering the same campaigns
again. Nothing may write to it: a test that makes runs of its own or edits a spec takes ``rendered_copy``, a
fresh instance holding a copy of that state (the instance folder with its event log and IO-manager outputs,
the specs; the write-once, content-addressed media are hard-linked), as if it had rendered them itself. Tests
that patch a stage, change the specs before rendering or record approvals keep ``instance`` + ``resources``.
The tests that take either are in one xdist group, so the campaigns are rendered on one worker only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

GROUP = pytest.mark.xdist_group("rendered")
CAMPAIGNS = {"shoe": ["9x16", "1x1"], "tower": ["16x9"]}


@dataclass(frozen=True)
class Rendered:
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    campaigns_dir: Path
    runs: dict[str, bool]  # partition of each run ('shoe', 'shoe|9x16', ...) -> success
    root: Path


def _resources(root: Path) -> dict[str, Any]:
    from media_routes.definitions import build_resources

    return build_resources(campaigns_dir=str(root / "campaigns"), media_root=str(root / "media"))


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns
    from media_routes.testing.campaigns import FAST, write_campaign

    root = tmp_path_factory.mktemp("rendered")
    (root / "campaigns").mkdir()
    # the same two campaigns as conftest.campaigns_dir
    write_campaign(root / "campaigns", "noir-sneaker", "shoe", formats=CAMPAIGNS["shoe"], **FAST)
    write_campaign(root / "campaigns", "atrium-residences", "tower", formats=CAMPAIGNS["tower"], **FAST)
    (root / "instance").mkdir()
    resources = _resources(root)
    # DAGSTER_HOME is left alone: the instance stays open for the whole session
    with dg.instance_for_test(temp_dir=str(root / "instance"), set_dagster_home=False) as instance:
        register_campaigns(instance, list(CAMPAIGNS))
        runs = {
            run.partition: materialize_stages(instance, resources, run.stages, run.partition).success
            for cid, formats in CAMPAIGNS.items()
            for run in plan_runs(cid, formats)
        }
        yield Rendered(instance, resources, root / "campaigns", runs, root)


@contextmanager
def copy_of(rendered: Rendered, root: Path) -> Iterator[Rendered]:
    """A fresh instance under ``root`` holding a copy of ``rendered``'s state, with its own specs folder."""
    shutil.copytree(rendered.root / "instance", root / "instance")
    shutil.copytree(rendered.root / "campaigns", root / "campaigns")
    shutil.copytree(rendered.root / "media", root / "media", copy_function=os.link)  # files are never rewritten
    with dg.instance_for_test(temp_dir=str(root / "instance")) as instance:
        yield Rendered(instance, _resources(root), root / "campaigns", dict(rendered.runs), root)


@pytest.fixture
def rendered_copy(rendered: Rendered, tmp_path: Path) -> Iterator[Rendered]:
    with copy_of(rendered, tmp_path / "rendered") as copy:
        yield copy
