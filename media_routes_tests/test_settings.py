"""Environment settings read in one place: a bad value names its variable (fast tier)."""

from __future__ import annotations

import dagster as dg
import pytest

from media_routes import settings


def test_sensor_interval_defaults_to_30_and_takes_a_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.ENV_SENSOR_INTERVAL_S, raising=False)
    assert settings.sensor_interval_s() == 30
    monkeypatch.setenv(settings.ENV_SENSOR_INTERVAL_S, "5")
    assert settings.sensor_interval_s() == 5
    for bad in ("0", "-3", "2.5", "soon"):
        monkeypatch.setenv(settings.ENV_SENSOR_INTERVAL_S, bad)
        with pytest.raises(ValueError, match=settings.ENV_SENSOR_INTERVAL_S):
            settings.sensor_interval_s()


def test_automation_status_is_running_or_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    from media_routes.defs.automation import ENV_AUTOMATION, _automation_default_status

    monkeypatch.delenv(ENV_AUTOMATION, raising=False)
    assert _automation_default_status() == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv(ENV_AUTOMATION, "Stopped")
    assert _automation_default_status() == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv(ENV_AUTOMATION, "paused")
    with pytest.raises(ValueError, match=ENV_AUTOMATION):
        _automation_default_status()
