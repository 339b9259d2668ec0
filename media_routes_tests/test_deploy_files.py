"""The deployment files in deploy/ against the real schemas they must satisfy, offline.

* deploy/helm/values.yaml: the Dagster chart's own values.schema.json (vendored in data/helm/, see its
  README for the source and version), and the Dagster instance those values imply: Dagster's schema.
* deploy/ecs/*.json: botocore's model of ECS RegisterTaskDefinition (the API the files are sent to).
* deploy/workspace.yaml and the instance inside deploy/docker-compose.yaml: Dagster's schemas.
* deploy/Dockerfile: static checks only (no Docker engine here).

Nothing is built, installed or contacted: no image build, no cluster, no AWS.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import botocore.validate
import jsonschema
import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import process_workspace_config
from dagster._serdes.config_class import ConfigurableClassData
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
HELM_DATA = Path(__file__).resolve().parent / "data" / "helm"
CHART_SCHEMA = HELM_DATA / "dagster.values.schema.json"
SUBCHART_SCHEMA = HELM_DATA / "dagster-user-deployments.values.schema.json"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
ECS_FILES = {
    "code": DEPLOY / "ecs" / "task-definition.json",
    "webserver": DEPLOY / "ecs" / "webserver-task-definition.json",
    "daemon": DEPLOY / "ecs" / "daemon-task-definition.json",
}
COMPOSE = DEPLOY / "docker-compose.yaml"
WORKSPACE = DEPLOY / "workspace.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROD_INSTANCE = DEPLOY / "dagster.yaml"

CODE_MODULE = "media_routes.definitions"
SECRET_LIKE = re.compile(r"KEY|SECRET|PASSWORD|TOKEN")
PROVIDER_KEYS = {"GEMINI_API_KEY", "FAL_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY"}
MEDIA_ENV = {"MEDIA_ROUTES_MEDIA_STORE", "MEDIA_ROUTES_S3_BUCKET", "MEDIA_ROUTES_S3_PREFIX", "AWS_REGION"}
PG_ENV = {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"}
INSTANCE_ENV = {
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_LOG_BUCKET": "media-routes-logs",
}
# the instance blocks every deployment must share with deploy/dagster.yaml
MIRRORED = ("concurrency", "run_monitoring", "run_retries")


@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in INSTANCE_ENV.items():
        monkeypatch.setenv(name, value)


def _load_instance(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Dagster's own loader on ``config`` written as $DAGSTER_HOME/dagster.yaml (raises when invalid)."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    value, _custom_class = dagster_instance_config(str(tmp_path))
    return value


def _class_config_ok(block: dict[str, Any]) -> list[str]:
    """The configurable class's own config schema on ``block['config']`` (module names as Dagster maps
    them: ``dagster.core.x`` is ``dagster._core.x``)."""
    module = ConfigurableClassData(block["module"], block["class"], "{}").module_name
    klass = getattr(importlib.import_module(module), block["class"])
    result = process_config(klass.config_type(), block.get("config") or {})
    return [e.message for e in result.errors or []]


def _prod() -> dict[str, Any]:
    return yaml.safe_load(PROD_INSTANCE.read_text())


# --------------------------------------------------------------------------------------------------
# Helm: the chart's values.schema.json


def _remote_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("https://"):
            yield ref
        for value in node.values():
            yield from _remote_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _remote_refs(value)


def _registry(schema: dict[str, Any]) -> Registry:
    """The Kubernetes definitions the chart schema points at, as accept-anything stand-ins (offline).

    Only the documents named in the schema are known; any other reference fails instead of being
    fetched (a registry without ``retrieve``).
    """
    documents: dict[str, dict[str, Any]] = {}
    for ref in _remote_refs(schema):
        uri, _, pointer = ref.partition("#")
        node = documents.setdefault(uri, {})
        for part in [p for p in pointer.split("/") if p]:
            node = node.setdefault(part, {})
    registry = Registry()
    for uri, contents in documents.items():
        registry = registry.with_resource(uri, Resource.from_contents(contents, default_specification=DRAFT202012))
    return registry


def _override_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema for a values *override* file: no ``required`` on objects.

    Helm checks the chart's defaults merged with the override; the defaults (the chart's values.yaml)
    are not vendored, so fields the chart itself provides cannot be required of the override. Types,
    enums, closed objects (additionalProperties false) and the conditional blocks (``if type is X then
    config.x is required``, which carry no ``properties`` of their own) are all kept. Lists are not
    merged by Helm, so list items (user deployments) are checked with ``required`` as well, separately.
    """
    out = copy.deepcopy(schema)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.pop("required", None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(out)
    return out


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, registry=_registry(schema))


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(schema).iter_errors(instance)]


@pytest.fixture(scope="module")
def chart_schema() -> dict[str, Any]:
    return json.loads(CHART_SCHEMA.read_text())


@pytest.fixture(scope="module")
def subchart_schema() -> dict[str, Any]:
    return json.loads(SUBCHART_SCHEMA.read_text())


@pytest.fixture
def values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


@pytest.mark.parametrize(("path", "chars"), [(CHART_SCHEMA, 124210), (SUBCHART_SCHEMA, 21814)])
def test_vendored_schemas_are_the_recorded_copies(path: Path, chars: int) -> None:
    text = path.read_text()
    assert len(text) == chars  # the length recorded when copied (data/helm/README.md)
    schema = json.loads(text)
    assert json.dumps(schema, indent=4) + "\n" == text  # as generated upstream: untouched
    assert schema["description"] == "@generated"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {r.partition("#")[0] for r in _remote_refs(schema)} == {
        "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v1.19.0/_definitions.json"
    }


def test_the_user_deployment_definition_is_the_same_in_chart_and_subchart(
    chart_schema: dict[str, Any], subchart_schema: dict[str, Any]
) -> None:
    shared = set(chart_schema["$defs"]) & set(subchart_schema["$defs"])
    assert "UserDeployment" in shared
    assert all(chart_schema["$defs"][name] == subchart_schema["$defs"][name] for name in shared)


def test_helm_values_pass_the_chart_schema(chart_schema: dict[str, Any], values: dict[str, Any]) -> None:
    assert _errors(_override_schema(chart_schema), values) == []
    # the top level of the chart schema is open (additionalProperties: true): a misspelt section would be
    # silently ignored by Helm, so every section must be one the chart knows
    assert set(values) <= set(chart_schema["properties"])


def test_user_deployments_pass_the_subchart_schema(subchart_schema: dict[str, Any], values: dict[str, Any]) -> None:
    section = values["dagster-user-deployments"]
    subchart_values = {k: v for k, v in section.items() if k in subchart_schema["properties"]}
    assert _errors(_override_schema(subchart_schema), subchart_values) == []
    # list items are not merged with chart defaults: each deployment must be complete on its own
    item_schema = {"$ref": "#/$defs/UserDeployment", "$defs": subchart_schema["$defs"]}
    for deployment in section["deployments"]:
        assert _errors(item_schema, deployment) == []


def _set(tree: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    tree = copy.deepcopy(tree)
    *parents, last = path.split(".")
    node: Any = tree
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return tree


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("runLauncher.type", "K8SRunLauncher"),  # not one of the chart's launchers
        ("runLauncher.config.k8sRunLauncher.runK8sConfg", {}),  # typo in a closed object
        ("computeLogManager.config.s3ComputeLogManger", {"bucket": "b"}),  # typo: and S3 config now missing
        ("computeLogManager.config.s3ComputeLogManager.uploadInterval", "30"),  # wrong type
        ("dagsterDaemon.runMonitorng", {"enabled": True}),  # typo in the daemon section
        ("dagsterDaemon.runCoordinator.config.customRunCoordinator.klass", "Q"),  # closed object
        ("dagster-user-deployments.deployments.0.port", "4000"),  # port must be an integer
        ("postgresql.enabled", "false"),  # a string, not a boolean
    ],
)
def test_an_invalid_helm_value_is_refused(
    chart_schema: dict[str, Any], values: dict[str, Any], path: str, value: Any
) -> None:
    assert _errors(_override_schema(chart_schema), _set(values, path, value))


def test_an_incomplete_user_deployment_is_refused(subchart_schema: dict[str, Any], values: dict[str, Any]) -> None:
    item_schema = {"$ref": "#/$defs/UserDeployment", "$defs": subchart_schema["$defs"]}
    deployment = dict(values["dagster-user-deployments"]["deployments"][0])
    del deployment["image"]
    assert _errors(item_schema, deployment)


def test_helm_values_describe_the_media_routes_deployment(values: dict[str, Any]) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", CODE_MODULE]
    assert deployment["port"] == 4000
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {e["name"]: e for e in deployment["env"]}
    assert env["MEDIA_ROUTES_MEDIA_STORE"]["value"] == "s3"
    assert MEDIA_ENV <= set(env) and PROVIDER_KEYS <= set(env)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    (user,) = [rest for keyword, rest in _instructions() if keyword == "USER"]
    assert deployment["podSecurityContext"]["runAsUser"] == int(user.split(":")[0])  # the image's user


def test_helm_values_hold_no_secret(values: dict[str, Any]) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for entry in deployment["env"]:
        if SECRET_LIKE.search(entry["name"]):
            assert "value" not in entry, entry["name"]
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] and ref["key"] == entry["name"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False

    def walk(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"password|secret|token", key, re.I) and isinstance(value, str):
                    yield f"{path}.{key}"
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}.{i}")

    assert list(walk(values, "")) == []


# --------------------------------------------------------------------------------------------------
# Helm: the Dagster instance the chart renders from these values


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def _instance_from_helm(values: dict[str, Any]) -> dict[str, Any]:
    """The parts of the chart's dagster.yaml (templates/configmap-instance.yaml) that depend on the values.

    A translation of the chart's templates written for this test (the templates are not vendored):
    storage from ``postgresql`` (password from the env var the chart sets from its secret), the run
    launcher, the run coordinator, compute logs, the chart's run monitoring and retries switches, telemetry,
    then ``additionalInstanceConfig`` appended. A block rendered twice is an error (a duplicate YAML key).
    """
    pg = values["postgresql"]
    rendered: dict[str, Any] = {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                    "params": pg.get("postgresqlParams") or {},
                    "scheme": pg["postgresqlScheme"],
                }
            }
        },
        # dagster_k8s is not installed here: the instance schema checks the block's shape, the chart
        # schema (K8sRunLauncherConfig, a closed object) checks its config
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher"},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    if coordinator["enabled"]:
        if coordinator["type"] == "CustomRunCoordinator":
            custom = coordinator["config"]["customRunCoordinator"]
            rendered["run_coordinator"] = {
                "module": custom["module"],
                "class": custom["class"],
                "config": custom["config"],
            }
        else:
            queued = coordinator["config"].get("queuedRunCoordinator") or {}
            rendered["run_coordinator"] = {
                "module": "dagster.core.run_coordinator",
                "class": "QueuedRunCoordinator",
                "config": {_snake(k): v for k, v in queued.items() if v is not None},
            }
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    rendered["compute_logs"] = {
        "module": "dagster_aws.s3.compute_log_manager",
        "class": "S3ComputeLogManager",
        "config": {_snake(k): v for k, v in logs["config"]["s3ComputeLogManager"].items()},
    }
    for switch, block in (("runMonitoring", "run_monitoring"), ("runRetries", "run_retries")):
        if daemon.get(switch, {}).get("enabled"):
            rendered[block] = {_snake(k): v for k, v in daemon[switch].items()}
    extra = values.get("additionalInstanceConfig") or {}
    twice = set(rendered) & set(extra)
    assert not twice, f"rendered twice: {sorted(twice)}"
    return {**rendered, **extra}


def test_the_instance_implied_by_the_helm_values_passes_dagsters_schema(
    instance_env: None, values: dict[str, Any], tmp_path: Path
) -> None:
    instance = _instance_from_helm(values)
    loaded = _load_instance(instance, tmp_path)
    assert loaded["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert _class_config_ok(instance["run_coordinator"]) == []
    assert _class_config_ok(instance["compute_logs"]) == []


def test_the_helm_instance_mirrors_the_production_instance(values: dict[str, Any]) -> None:
    instance, prod = _instance_from_helm(values), _prod()
    for block in MIRRORED:
        assert instance[block] == prod[block], block
    for block in ("run_coordinator", "compute_logs"):
        assert (instance[block]["module"], instance[block]["class"]) == (prod[block]["module"], prod[block]["class"])
    assert instance["compute_logs"]["config"]["prefix"] == prod["compute_logs"]["config"]["prefix"]
    assert instance["telemetry"] == prod["telemetry"]
    assert (
        instance["storage"]["postgres"]["postgres_db"]["scheme"] == prod["storage"]["postgres"]["postgres_db"]["scheme"]
    )


def test_the_charts_own_queue_limits_next_to_pools_would_be_refused(
    instance_env: None, values: dict[str, Any], tmp_path: Path
) -> None:
    """Why the values name the queued coordinator as a custom class: the chart's queuedRunCoordinator
    block renders max_concurrent_runs, which Dagster refuses next to a ``concurrency:`` block."""
    values["dagsterDaemon"]["runCoordinator"] = {
        "enabled": True,
        "type": "QueuedRunCoordinator",
        "config": {"queuedRunCoordinator": {"maxConcurrentRuns": 8}},
    }
    with pytest.raises(DagsterInvalidConfigError, match="incompatible"):
        _load_instance(_instance_from_helm(values), tmp_path)


def test_a_typo_in_the_helm_instance_blocks_is_refused(
    instance_env: None, values: dict[str, Any], tmp_path: Path
) -> None:
    values["additionalInstanceConfig"]["run_monitoring"]["start_timeout_second"] = 600
    with pytest.raises(DagsterInvalidConfigError):
        _load_instance(_instance_from_helm(values), tmp_path)


# --------------------------------------------------------------------------------------------------
# ECS: botocore's model of RegisterTaskDefinition


@pytest.fixture(scope="module")
def register_shape() -> Any:
    return botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape


def _task(name: str) -> dict[str, Any]:
    return json.loads(ECS_FILES[name].read_text())


def _enum_errors(shape: Any, value: Any, path: str = "") -> Iterator[str]:
    """Values outside the model's enums (botocore's ParamValidator does not check enums)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                yield from _enum_errors(shape.members[key], item, f"{path}.{key}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _enum_errors(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from _enum_errors(shape.value, item, f"{path}[{key}]")
    elif shape.type_name == "string" and getattr(shape, "enum", None) and value not in shape.enum:
        yield f"{path}: {value!r} not in {shape.enum}"


def _model_errors(shape: Any, task: dict[str, Any]) -> list[str]:
    report = botocore.validate.ParamValidator().validate(task, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + list(_enum_errors(shape, task))


@pytest.mark.parametrize("name", sorted(ECS_FILES))
def test_ecs_task_definition_passes_the_register_task_definition_model(register_shape: Any, name: str) -> None:
    assert _model_errors(register_shape, _task(name)) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("containerDefinitions.0.portMapings", []),  # unknown parameter
        ("networkMode", "awsvcp"),  # not in the enum
        ("containerDefinitions.0.logConfiguration.logDriver", "cloudwatch"),  # not in the enum
        ("cpu", 1024),  # a string in the API
        ("family", _DELETE),  # required
    ],
)
def test_an_invalid_ecs_task_definition_is_refused(register_shape: Any, path: str, value: Any) -> None:
    assert _model_errors(register_shape, _set(_task("code"), path, value))


@pytest.mark.parametrize("name", sorted(ECS_FILES))
def test_ecs_containers_are_complete(name: str) -> None:
    task = _task(name)
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    for container in task["containerDefinitions"]:
        assert container["image"]
        log = container["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(log["options"])
        assert container.get("healthCheck", {}).get("command")
    ports = {c["name"]: [p["containerPort"] for p in c.get("portMappings", [])] for c in task["containerDefinitions"]}
    expected = {"code": {"code": [4000]}, "webserver": {"webserver": [3000]}, "daemon": {"daemon": []}}[name]
    assert ports == expected


@pytest.mark.parametrize("name", sorted(ECS_FILES))
def test_ecs_secrets_come_only_from_arns(name: str) -> None:
    for container in _task(name)["containerDefinitions"]:
        literal = [e["name"] for e in container.get("environment", []) if SECRET_LIKE.search(e["name"])]
        assert literal == [], f"secret-like names with literal values: {literal}"
        for secret in container.get("secrets", []):
            assert re.fullmatch(r"arn:aws:(secretsmanager|ssm):[a-z0-9-]+:\d{12}:\S+", secret["valueFrom"]), secret
        names = {s["name"] for s in container.get("secrets", [])}
        assert PG_ENV <= names  # every process opens the instance: Postgres from Secrets Manager
        text = json.dumps(container)
        assert INSTANCE_ENV["DAGSTER_PG_PASSWORD"] not in text


def test_the_ecs_code_server_serves_media_routes() -> None:
    (code,) = _task("code")["containerDefinitions"]
    assert code["command"][:3] == ["dagster", "code-server", "start"]
    assert _flag(code["command"], "-m") == CODE_MODULE and _flag(code["command"], "-p") == "4000"
    env = {e["name"]: e["value"] for e in code["environment"]}
    assert env["DAGSTER_CURRENT_IMAGE"] == code["image"]  # the image EcsRunLauncher starts runs with
    assert env["MEDIA_ROUTES_MEDIA_STORE"] == "s3" and MEDIA_ENV <= set(env)
    # provider routes are chosen when the code location loads: the keys must be in its environment
    assert PROVIDER_KEYS <= {s["name"] for s in code["secrets"]}


def test_ecs_run_tasks_inherit_what_they_need_from_the_daemon() -> None:
    """EcsRunLauncher (use_current_ecs_task_config) copies the launching process's container, the
    daemon's, into each run task with the code server's image: the run workers' environment is the daemon's."""
    prod_launcher = _prod()["run_launcher"]["config"]
    assert prod_launcher["use_current_ecs_task_config"] is True
    (daemon,) = _task("daemon")["containerDefinitions"]
    env = {e["name"] for e in daemon["environment"]}
    assert set(prod_launcher["env_vars"]) <= env
    assert PROVIDER_KEYS <= {s["name"] for s in daemon["secrets"]}
    images = {c["image"] for name in ECS_FILES for c in _task(name)["containerDefinitions"]}
    assert len(images) == 1  # one image for code server, webserver, daemon and runs
    for name in ("webserver", "daemon"):
        (container,) = _task(name)["containerDefinitions"]
        assert _flag(container["command"], "-w") == _image_workspace_path()


# --------------------------------------------------------------------------------------------------
# docker-compose and the workspace


@pytest.fixture
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_workspace_passes_dagsters_workspace_schema() -> None:
    result = process_workspace_config(yaml.safe_load(WORKSPACE.read_text()))
    assert result.success, [e.message for e in result.errors or []]


def test_a_typo_in_the_workspace_is_refused() -> None:
    bad = yaml.safe_load(WORKSPACE.read_text())
    bad["load_from"][0]["grpc_server"]["prot"] = bad["load_from"][0]["grpc_server"].pop("port")
    assert not process_workspace_config(bad).success


def test_compose_has_the_production_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "s3", "code", "webserver", "daemon"} <= set(services)
    build = services["code"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    for name in ("webserver", "daemon"):
        assert services[name]["image"] == services["code"]["image"]
        assert services[name]["build"] == build


def test_compose_code_service_runs_the_code_server(compose: dict[str, Any]) -> None:
    command = compose["services"]["code"]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert _flag(command, "-m") == CODE_MODULE
    assert _flag(command, "-p") in compose["services"]["code"]["expose"]


def test_compose_webserver_and_daemon_load_the_code_server_through_the_workspace(compose: dict[str, Any]) -> None:
    (server,) = [entry["grpc_server"] for entry in yaml.safe_load(WORKSPACE.read_text())["load_from"]]
    services = compose["services"]
    assert server["host"] in services and server["host"] == "code"
    assert str(server["port"]) == _flag(services["code"]["command"], "-p")
    assert server["location_name"] == "media_routes"
    for name in ("webserver", "daemon"):
        target = _flag(services[name]["command"], "-w")
        mounts = [v.split(":") for v in services[name]["volumes"]]
        assert [(COMPOSE.parent / src).resolve() for src, dst, *_ in mounts if dst == target] == [WORKSPACE]
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"


_REF = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def test_compose_holds_no_secret(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if not SECRET_LIKE.search(key):
                continue
            checked += 1
            match = _REF.fullmatch(str(value))
            assert match, f"{name}.{key} is not taken from the environment: {value!r}"
            if match["op"] == "-":
                assert match["arg"] == "", f"{name}.{key} has a default value"
    assert checked >= 8
    # the credentials every service needs are required, not defaulted
    for required in ("POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        assert re.search(r"\$\{" + required + r":\?", COMPOSE.read_text()), required


def test_compose_instance_passes_dagsters_schema_and_mirrors_production(
    instance_env: None, compose: dict[str, Any], tmp_path: Path
) -> None:
    target = "/opt/dagster/dagster_home/dagster.yaml"
    for name in ("code", "webserver", "daemon"):
        assert [c["target"] for c in compose["services"][name]["configs"]] == [target]
        assert compose["services"][name]["environment"]["DAGSTER_HOME"] == str(Path(target).parent)
    instance = yaml.safe_load(compose["configs"]["dagster_instance"]["content"])
    _load_instance(instance, tmp_path)
    assert _class_config_ok(instance["compute_logs"]) == []
    assert _class_config_ok(instance["run_launcher"]) == []
    prod = _prod()
    for block in (*MIRRORED, "storage", "run_coordinator", "telemetry"):
        assert instance[block] == prod[block], block
    assert instance["run_launcher"]["class"] == "DefaultRunLauncher"  # runs start in the code container


def test_compose_code_service_gets_the_media_store_and_provider_keys(compose: dict[str, Any]) -> None:
    env = compose["services"]["code"]["environment"]
    assert env["MEDIA_ROUTES_MEDIA_STORE"] == "s3"
    assert env["MEDIA_ROUTES_S3_ENDPOINT_URL"].startswith("http://s3:")
    assert (MEDIA_ENV | PROVIDER_KEYS | PG_ENV | {"MEDIA_ROUTES_STATE_DIR"}) <= set(env)
    volumes = {v.split(":")[1] for v in compose["services"]["code"]["volumes"]}
    assert {env["MEDIA_ROUTES_STATE_DIR"], "/opt/dagster/dagster_home/storage"} <= volumes


def test_a_typo_in_the_compose_instance_is_refused(instance_env: None, compose: dict[str, Any], tmp_path: Path) -> None:
    instance = yaml.safe_load(compose["configs"]["dagster_instance"]["content"])
    instance["run_retries"]["max_retrys"] = instance["run_retries"].pop("max_retries")
    with pytest.raises(DagsterInvalidConfigError):
        _load_instance(instance, tmp_path)


# --------------------------------------------------------------------------------------------------
# Dockerfile (static: no engine here)


def _instructions() -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\").strip() if current else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            lines.append(current)
            current = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
    return env


def _image_workspace_path() -> str:
    copies = [shlex.split(rest) for keyword, rest in _instructions() if keyword == "COPY"]
    return next(args[-1] for args in copies if args[0] == "deploy/workspace.yaml")


def test_dockerfile_base_user_and_command() -> None:
    instructions = _instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms == ["python:3.11-slim"]
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [k for k, _ in instructions].index("USER") > max(i for i, (k, _) in enumerate(instructions) if k == "RUN")
    (cmd,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert _flag(cmd, "-m") == CODE_MODULE and _flag(cmd, "-p") == "4000" and _flag(cmd, "-h") == "0.0.0.0"
    assert [rest for keyword, rest in instructions if keyword == "EXPOSE"] == ["4000"]
    assert any(keyword == "RUN" and "pip install ." in rest for keyword, rest in instructions)


def test_dockerfile_puts_the_production_instance_in_dagster_home() -> None:
    instructions = _instructions()
    env = _env(instructions)
    copies = {shlex.split(rest)[0]: shlex.split(rest)[-1] for keyword, rest in instructions if keyword == "COPY"}
    assert copies["deploy/dagster.yaml"] == f"{env['DAGSTER_HOME']}/dagster.yaml"
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert copies["deploy/workspace.yaml"] == _image_workspace_path()
    assert env["MEDIA_ROUTES_CAMPAIGNS_DIR"] == copies["campaigns"]


def test_dockerfile_sources_exist_and_are_in_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (".venv", ".git", ".dagster_home", "deliverables", ".env"):
        assert required in ignored
    for keyword, rest in _instructions():
        if keyword != "COPY":
            continue
        for source in shlex.split(rest)[:-1]:
            assert (REPO / source).exists(), source
            assert not any(
                Path(source).match(pattern.removeprefix("**/")) or source.startswith(pattern + "/")
                for pattern in ignored
            ), f"{source} is excluded by .dockerignore"


def test_deploy_readme_lists_every_deploy_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in [DOCKERFILE, COMPOSE, WORKSPACE, HELM_VALUES, *ECS_FILES.values()]:
        assert f"`{path.relative_to(DEPLOY)}`" in readme, path.name
