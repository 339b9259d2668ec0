"""The named environment (MEDIA_ROUTES_ENV: local / rehearsal / production) chooses the backends in one place
(media_routes/defs/environment.py, used by build_resources) and refuses a several-machine environment that lacks
a shared backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from media_routes.defs import environment
from media_routes.settings import REPO_ROOT

SHARED = {
    "MEDIA_ROUTES_S3_BUCKET": "media",
    "MEDIA_ROUTES_STATE_DB_URL": "postgresql://u:p@db:5432/state",
    "MEDIA_ROUTES_STATE_S3_BUCKET": "state",
}


def test_local_is_the_default_and_keeps_the_per_variable_overrides() -> None:
    env = environment.current({})
    assert env.name == "local" and not env.shared_state
    assert environment.media_store_kind(env, {}) == "local"
    override = {"MEDIA_ROUTES_MEDIA_STORE": "s3", "MEDIA_ROUTES_S3_BUCKET": "b"}
    assert environment.media_store_kind(environment.current(override), override) == "s3"


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="MEDIA_ROUTES_ENV='staging': choose one of local, rehearsal, production"):
        environment.current({"MEDIA_ROUTES_ENV": "staging"})


def test_production_names_every_missing_shared_backend() -> None:
    with pytest.raises(ValueError) as err:
        environment.current({"MEDIA_ROUTES_ENV": "production", "MEDIA_ROUTES_S3_BUCKET": "media"})
    assert "MEDIA_ROUTES_STATE_DB_URL, MEDIA_ROUTES_STATE_S3_BUCKET" in str(err.value)
    assert "MEDIA_ROUTES_S3_BUCKET," not in str(err.value)  # the one that is set is not named
    env = environment.current({"MEDIA_ROUTES_ENV": "Production", **SHARED})
    assert env.name == "production" and env.shared_state and environment.media_store_kind(env, {}) == "s3"


def test_rehearsal_needs_the_s3_compatible_endpoint_too() -> None:
    with pytest.raises(ValueError, match="needs MEDIA_ROUTES_S3_ENDPOINT_URL"):
        environment.current({"MEDIA_ROUTES_ENV": "rehearsal", **SHARED})


def test_a_media_store_that_contradicts_the_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="keeps the media in s3, but MEDIA_ROUTES_MEDIA_STORE='local'"):
        environment.current({"MEDIA_ROUTES_ENV": "production", **SHARED, "MEDIA_ROUTES_MEDIA_STORE": "local"})


def test_build_resources_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from media_routes.definitions import build_resources
    from media_routes.defs.s3_store import S3MediaStore

    monkeypatch.delenv("MEDIA_ROUTES_MEDIA_STORE", raising=False)
    monkeypatch.setenv("MEDIA_ROUTES_ENV", "production")
    for name, value in SHARED.items():
        monkeypatch.setenv(name, value)
    resources = build_resources(campaigns_dir=str(tmp_path), media_root=str(tmp_path / "media"))
    assert isinstance(resources["media_store"], S3MediaStore) and resources["media_store"].bucket == "media"
    assert "io_manager" in resources  # stage outputs beside the media on S3
    hub = resources["providers"]
    assert hub.environment == "production" and hub.state_s3_bucket == "state"
    monkeypatch.delenv("MEDIA_ROUTES_STATE_S3_BUCKET")
    with pytest.raises(ValueError, match="needs MEDIA_ROUTES_STATE_S3_BUCKET"):
        build_resources(campaigns_dir=str(tmp_path), media_root=str(tmp_path / "media"))


def _ecs_env(path: Path) -> dict[str, str]:
    task = json.loads(path.read_text())
    return {e["name"]: e.get("value", "") for c in task["containerDefinitions"] for e in c.get("environment", [])}


def test_every_deployment_that_loads_the_code_names_production() -> None:
    """Where the definitions load (code server, daemon, the runs they start), the environment is production, so a
    deployment that forgets a shared backend fails at load instead of keeping state on one machine's disk."""
    deploy = REPO_ROOT / "deploy"
    assert _ecs_env(deploy / "ecs" / "task-definition.json")["MEDIA_ROUTES_ENV"] == "production"
    assert _ecs_env(deploy / "ecs" / "daemon-task-definition.json")["MEDIA_ROUTES_ENV"] == "production"
    compose = yaml.safe_load((deploy / "docker-compose.yaml").read_text())
    assert compose["services"]["code"]["environment"]["MEDIA_ROUTES_ENV"] == "production"
    helm = yaml.safe_load((deploy / "helm" / "values.yaml").read_text())
    assert set(_named(helm, "MEDIA_ROUTES_ENV")) == {"production"}


def _named(node: object, name: str) -> list[str]:
    """Every ``value`` of a ``{name: ..., value: ...}`` entry anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        found = [str(node.get("value"))] if node.get("name") == name else []
        return found + [v for child in node.values() for v in _named(child, name)]
    if isinstance(node, list):
        return [v for child in node for v in _named(child, name)]
    return []
