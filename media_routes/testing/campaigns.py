"""Small, fast copies of the example campaigns, for the tests, the rehearsal and offline demos.

The examples are read from the repository's ``campaigns/`` folder (``media_routes.settings.REPO_ROOT``), so
this works from a source checkout or an editable install, not from a wheel. Never used in production.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from media_routes.settings import REPO_ROOT

EXAMPLES = REPO_ROOT / "campaigns"

# 2K upscale and a 1 s motion clip: the example campaigns' stages, fast enough for tests
FAST = {
    "upscale": {"target": "2K", "detail": 0.6},
    "motion": {"duration_s": 1.0, "fps": 12, "camera": "push_in", "strength": 0.1},
}


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


def write_many(
    root: Path,
    n: int,
    *,
    prefix: str = "c",
    start: int = 0,
    edit: Callable[[int, dict[str, Any]], None] | None = None,
    **overrides: object,
) -> list[str]:
    """``n`` campaigns ``<prefix><start:05d>`` ... in ``root``, alternating the two examples: each gets its own
    ``campaign.yaml`` (with its id, ``overrides``, then ``edit(i, spec)`` if given) and hard links to the
    example's asset files (a copy where the file system cannot link), so 10,000 campaigns cost little disk.
    Returns the ids."""
    sources = sorted(p for p in EXAMPLES.iterdir() if (p / "campaign.yaml").is_file())
    specs = {}
    for src in sources:
        data = yaml.safe_load((src / "campaign.yaml").read_text())
        for key, value in overrides.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        specs[src.name] = data
    ids = []
    for i in range(start, start + n):
        src = sources[i % len(sources)]
        cid = f"{prefix}{i:05d}"
        dst = root / cid
        for path in sorted(src.rglob("*")):
            target = dst / path.relative_to(src)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif path.name != "campaign.yaml":
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    target.hardlink_to(path)
                except OSError:
                    shutil.copyfile(path, target)
        data = {**specs[src.name], "id": cid}
        if edit is not None:
            edit(i, data)
        (dst / "campaign.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        ids.append(cid)
    return ids
