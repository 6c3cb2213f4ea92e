"""Ports, the pinned version, tool checks, topic specs, env round trip, endpoint parsing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiokafka.errors import (
    InvalidReplicationFactorError,
    NotControllerError,
    TopicAuthorizationFailedError,
)

from stack.errors import StackError
from stack.install import POM, check_tools, kafka_jar, pinned_kafka_version
from stack.layout import Layout
from stack.local import settings_env
from stack.ports import GRPC_OFFSET, free_port, is_free
from stack.topics import topic_specs, worth_retrying
from streamtap.objectstore import parse_endpoint
from streamtap.settings import load_settings


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not is_free(server.getsockname()[1])


def test_free_port_with_grpc_leaves_the_pair_free() -> None:
    port = free_port(with_grpc=True)
    assert is_free(port) and is_free(port + GRPC_OFFSET)


def test_out_of_range_ports_are_never_free() -> None:
    assert not is_free(0)
    assert not is_free(70000)


def test_the_pom_pins_a_kafka_4_version() -> None:
    assert pinned_kafka_version().split(".")[0] == "4"
    assert POM.read_text().count("<kafka.version>") == 1


def test_a_pom_without_the_property_is_an_error(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    with pytest.raises(StackError, match=r"kafka\.version"):
        pinned_kafka_version(pom)


def test_missing_tools_are_all_named() -> None:
    with pytest.raises(StackError) as missing:
        check_tools("no-such-tool-a", "no-such-tool-b")
    assert "no-such-tool-a" in str(missing.value)
    assert "no-such-tool-b" in str(missing.value)


def test_kafka_jar_is_found_by_name(tmp_path: Path) -> None:
    assert kafka_jar(tmp_path) is None
    (tmp_path / "kafka-clients-4.1.2.jar").touch()
    (tmp_path / "kafka_2.13-4.1.2.jar").touch()
    assert kafka_jar(tmp_path) == tmp_path / "kafka_2.13-4.1.2.jar"


def test_state_survives_a_reload_and_merges(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "home")
    assert layout.read_state() == {}
    layout.update_state(a=1)
    layout.update_state(b={"x": 2})
    assert Layout(tmp_path / "home").read_state() == {"a": 1, "b": {"x": 2}}


def test_topics_use_configured_names_and_partitions(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, topic_partitions=12, streams_topic="s2")
    specs = {spec.name: spec.partitions for spec in topic_specs(settings)}
    assert specs["s2"] == 12
    assert specs[settings.matched_topic] == 12
    assert specs[settings.stats_topic] == 1
    assert specs[settings.control_topic] == 1
    assert set(specs) >= {settings.deadletter_topic}


def test_settings_env_reproduces_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = load_settings(home=tmp_path, kafka_port=12345, recording_kfl="http")
    for name, value in settings_env(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8333", ("127.0.0.1:8333", False)),
        ("https://s3.example.com", ("s3.example.com", True)),
        ("http://[::1]:9000/", ("[::1]:9000", False)),
    ],
)
def test_parse_endpoint(url: str, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(url) == expected


@pytest.mark.parametrize("url", ["s3.example.com", "ftp://x", "http://host/bucket"])
def test_parse_endpoint_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="S3_ENDPOINT"):
        parse_endpoint(url)


def test_cluster_ids_never_start_with_a_dash() -> None:
    """``kafka-storage format -t -xyz`` takes such an id for an option; the stack then fails."""
    import base64

    from stack.kafka import _new_cluster_id

    dash_first = base64.urlsafe_b64decode("-" + "A" * 21 + "==")  # encodes to "-AAAA..."
    draws = iter([dash_first, dash_first, bytes(range(16))])
    got = _new_cluster_id(lambda: next(draws))
    assert got == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
    assert all(not _new_cluster_id().startswith("-") for _ in range(2000))


def test_topic_creation_is_retried_while_the_new_broker_is_fenced() -> None:
    fenced = InvalidReplicationFactorError("All brokers are currently fenced.")
    assert worth_retrying(fenced)
    assert worth_retrying(NotControllerError())
    assert not worth_retrying(TopicAuthorizationFailedError())
