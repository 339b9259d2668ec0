"""Shared fixtures: small campaigns in a temporary folder, a temporary Dagster instance."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from media_routes_tests.shared_render import rendered, rendered_copy  # noqa: F401
from media_routes_tests.tiers import _dagster_runs_only_in_marked_tests, pytest_collection_modifyitems  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "campaigns"


def write_campaign(root: Path, source_id: str, new_id: str | None = None, **overrides: object) -> Path:
    """Copy an example campaign into ``root`` (optionally renamed) with top-level fields overridden."""
    new_id = new_id or source_id
    dst = root / new_id
    shutil.copytree(EXAMPLES / source_id, dst)
    spec_path = dst / "campaign.yaml"
    data = yaml.safe_load(spec_path.read_text())
    data["id"] = new_id
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec_path


FAST = {
    "upscale": {"target": "2K", "detail": 0.6},
    "motion": {"duration_s": 1.0, "fps": 12, "camera": "push_in", "strength": 0.1},
}


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
