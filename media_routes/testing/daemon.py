"""``dagster-daemon`` for tests, with a settable backfill loop: ``python -m media_routes.testing.daemon run -w ...``.

Dagster's backfill daemon sleeps ``dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS`` (30 s) between
iterations, and an asset backfill of two stages needs several iterations (request the first stage, see it done,
request the next, see it done, mark the backfill complete): about two minutes of waiting per backfill, whatever
the machine. Dagster has no setting for it (``dagster.yaml``'s ``backfills`` block has none), so the deployment
tests and the rehearsal start the daemon through this module, which sets that constant from
``MEDIA_ROUTES_DAEMON_LOOP_S`` before the daemon starts, then runs Dagster's own ``dagster-daemon`` command line
unchanged. Without the variable it is exactly ``dagster-daemon``. Never used in production.
"""

from __future__ import annotations

import os
import sys

ENV_LOOP_S = "MEDIA_ROUTES_DAEMON_LOOP_S"


def main() -> int:
    from dagster._daemon import controller
    from dagster._daemon.cli import main as daemon_main

    value = os.environ.get(ENV_LOOP_S, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise SystemExit(f"{ENV_LOOP_S} must be a whole number of seconds >= 1, not {value!r}")
        if not isinstance(getattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", None), int):
            raise SystemExit(  # a Dagster upgrade moved it: fail loudly rather than silently wait 30 s per loop
                "dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS is gone: update this module"
            )
        controller.DEFAULT_DAEMON_INTERVAL_SECONDS = int(value)  # read by the backfill loop when it starts
    sys.argv[0] = "dagster-daemon"
    daemon_main()  # click exits the process itself (SystemExit with the command's status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
