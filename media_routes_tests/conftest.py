"""Shared fixtures: small campaigns in a temporary folder, a temporary Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from media_routes.testing.campaigns import FAST, write_campaign
from media_routes_tests.shared_render import rendered, rendered_copy  # noqa: F401
from media_routes_tests.tiers import _dagster_runs_only_in_marked_tests, pytest_collection_modifyitems  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def campaigns_dir(tmp_path: Path) -> Path:
    """Two small campaigns (2K, 1 s motion) derived from the examples: 'shoe' and 'tower'."""
    root = tmp_path / "campaigns"
    root.mkdir()
    write_campaign(root, "noir-sneaker", "shoe", formats=["9x16", "1x1"], **FAST)
    write_campaign(root, "atrium-residences", "tower", formats=["16x9"], **FAST)
    return root


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def resources(campaigns_dir: Path, tmp_path: Path) -> dict[str, object]:
    from media_routes.definitions import build_resources

    return build_resources(campaigns_dir=str(campaigns_dir), media_root=str(tmp_path / "media"))
