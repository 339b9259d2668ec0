"""The deployment tests' daemon launcher (media_routes/testing/daemon.py) sets the backfill loop, then runs
Dagster's own dagster-daemon command line."""

from __future__ import annotations

import sys

import pytest
from dagster._daemon import controller

from media_routes.testing import daemon


def test_the_loop_is_set_before_dagster_daemon_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 30)  # restored after the test
    monkeypatch.setenv(daemon.ENV_LOOP_S, "7")
    monkeypatch.setattr(sys, "argv", ["media_routes.testing.daemon", "--help"])
    with pytest.raises(SystemExit) as done:
        daemon.main()
    assert done.value.code == 0  # dagster-daemon's own --help answered
    assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 7


def test_without_the_variable_it_is_dagster_daemon_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 30)
    monkeypatch.delenv(daemon.ENV_LOOP_S, raising=False)
    monkeypatch.setattr(sys, "argv", ["media_routes.testing.daemon", "--help"])
    with pytest.raises(SystemExit):
        daemon.main()
    assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 30


@pytest.mark.parametrize("value", ["0", "-3", "fast"])
def test_a_bad_loop_value_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(daemon.ENV_LOOP_S, value)
    with pytest.raises(SystemExit, match="MEDIA_ROUTES_DAEMON_LOOP_S must be a whole number"):
        daemon.main()
