"""Argument checks of the ``media-routes`` commands, made before any work starts.

Each ``*_arg`` function is an argparse ``type=``: a bad value ends the command at once with exit status 2 and
``argument --x: reason`` (argparse's own message, no traceback). The checks that need the spec (a format the
spec does not list) or the file system (an output path that cannot be written) are plain functions returning
the reason or None, called by the command before it renders anything.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from media_routes.formats import FORMAT_KEYS
from media_routes.spec import SEED_LIMIT, SLUG_RE


def campaign_arg(value: str) -> str:
    """A campaign id: a slug, the name of a folder directly inside the campaigns folder (never a path)."""
    if not SLUG_RE.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not a campaign id (lowercase letters, digits and '-', at most 64 characters; "
            "the name of a folder in the campaigns folder, not a path)"
        )
    return value


def seed_arg(value: str) -> int:
    """A seed the spec would accept: an integer 0 <= seed < 2**31."""
    try:
        seed = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not an integer") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{seed} is out of range: a seed is 0 <= seed < {SEED_LIMIT} (2**31)")
    return seed


def format_arg(value: str) -> str:
    """A delivery format of the catalog (9x16, 16x9, 4x5, 1x1)."""
    if value not in FORMAT_KEYS:
        raise argparse.ArgumentTypeError(f"unknown format {value[:40]!r}; known: {', '.join(FORMAT_KEYS)}")
    return value


def format_problem(fmt: str | None, campaign_id: str, formats: list[str] | tuple[str, ...]) -> str | None:
    """Why ``fmt`` cannot be used for this campaign (the spec does not deliver it), or None."""
    if fmt is None or fmt in formats:
        return None
    return f"{campaign_id} has no format {fmt!r}: its spec delivers {', '.join(formats)}"


def _probe(directory: Path) -> str | None:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".media-routes-probe-"):
            pass
    except OSError as exc:
        return f"{directory} is not writable ({exc.strerror or exc})"
    return None


def output_dir_problem(path: Path) -> str | None:
    """Why files cannot be written into the folder ``path`` (created if missing), or None."""
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the folder {path} ({exc.strerror or exc})"
    return _probe(path)


def output_file_problem(path: Path) -> str | None:
    """Why the file ``path`` cannot be written (its folder must exist), or None."""
    if path.is_dir():
        return f"{path} is a folder, not a file"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"the folder {parent} does not exist"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return _probe(parent)
