"""Rehearse the production topology on one machine (issue #7): the command line.

    python deploy/rehearse.py [--root DIR] [--campaigns N] [--json]

The rehearsal is :mod:`media_routes.testing.rehearsal` (its docstring says what it starts, the faults it
injects and what it checks); this file only runs its ``main`` with the repository's own package first on the
path. Exit status 0 when every check passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's media_routes before any installed one

from media_routes.testing.rehearsal import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
