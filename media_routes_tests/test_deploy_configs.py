"""The production instance config (deploy/dagster.yaml) against Dagster's own config schemas.

Only the schemas: nothing connects to Postgres, ECS or S3 here (the rehearsal of issue #7 will).
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parent.parent
PROD = REPO / "deploy" / "dagster.yaml"
ENV = {
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_LOG_BUCKET": "media-routes-logs",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def test_production_dagster_yaml_passes_the_instance_schema(env: None, tmp_path: Path) -> None:
    shutil.copy(PROD, tmp_path / "dagster.yaml")
    config, _custom_class = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 8


@pytest.mark.parametrize("section", ["run_launcher", "compute_logs"])
def test_each_configurable_class_accepts_its_config(env: None, section: str) -> None:
    data = yaml.safe_load(PROD.read_text())[section]
    klass = getattr(importlib.import_module(data["module"]), data["class"])
    result = process_config(klass.config_type(), data.get("config", {}))
    assert result.success, [e.message for e in result.errors or []]


def test_a_typo_in_a_class_config_is_refused(env: None) -> None:
    data = yaml.safe_load(PROD.read_text())["run_launcher"]
    klass = getattr(importlib.import_module(data["module"]), data["class"])
    result = process_config(klass.config_type(), {**data["config"], "container_nmae": "x"})
    assert not result.success


def test_no_secret_is_written_in_the_file() -> None:
    text = PROD.read_text()
    assert "password: {env: DAGSTER_PG_PASSWORD}" in text
    assert all(f"{{env: {name}}}" in text for name in ENV)  # every secret or host comes from the environment
    assert ENV["DAGSTER_PG_PASSWORD"] not in text and ENV["DAGSTER_PG_HOST"] not in text


def test_the_postgres_url_loads_an_installed_driver(env: None, tmp_path: Path) -> None:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which dagster-postgres does not install: the
    # daemon died at start with "No module named 'psycopg'" until the file named the psycopg2 driver.
    import sqlalchemy
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    shutil.copy(PROD, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    resolved = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])  # env resolved
    assert resolved.success, resolved.errors
    url = pg_url_from_config(resolved.value)
    assert url.startswith("postgresql+psycopg2://") and ":5432/" in url
    engine = sqlalchemy.create_engine(url)  # imports the driver; connects to nothing
    assert engine.dialect.driver == "psycopg2"
