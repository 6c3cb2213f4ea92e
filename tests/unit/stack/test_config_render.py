"""Generated server configs follow the settings (pure: no process is started)."""

from __future__ import annotations

import json
from pathlib import Path

from stack.kafka import render_log4j2, render_server_properties
from stack.layout import Layout
from stack.seaweed import INTERNAL_SERVERS, identities_json, mini_flags
from streamtap.settings import load_settings


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_server_properties_follow_settings(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, kafka_port=19092, kafka_controller_port=19093, max_message_bytes=8_000_000
    )
    props = _props(render_server_properties(settings, Layout(tmp_path)))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["message.max.bytes"] == "8000000"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")


def test_single_node_internal_topics_use_replication_one(tmp_path: Path) -> None:
    props = _props(render_server_properties(load_settings(home=tmp_path), Layout(tmp_path)))

    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_kafka_logs_go_to_the_given_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "kafka.log"
    assert f'fileName="{log}"' in render_log4j2(log)


def test_weed_mini_flags_bind_loopback_and_protect_buckets(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, s3_port=18333)
    ports = {name: 20000 + i for i, name in enumerate(INTERNAL_SERVERS)}
    flags = mini_flags(settings, tmp_path / "data", tmp_path / "ids.json", ports)

    assert "-ip.bind=127.0.0.1" in flags
    assert "-s3.port=18333" in flags
    assert "-s3.allowDeleteBucketNotEmpty=false" in flags
    assert f"-s3.config={tmp_path / 'ids.json'}" in flags
    assert {f"-{name}.port={port}" for name, port in ports.items()} <= set(flags)


def test_identity_file_carries_the_configured_keys(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, aws_access_key_id="AKID", aws_secret_access_key="s3cr3t-value"
    )
    identities = json.loads(identities_json(settings))["identities"]

    assert identities[0]["credentials"] == [{"accessKey": "AKID", "secretKey": "s3cr3t-value"}]
    assert "Admin" in identities[0]["actions"]


def test_weed_sockets_live_in_the_run_dir(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    ports = dict.fromkeys(INTERNAL_SERVERS, 1)
    flags = mini_flags(settings, tmp_path / "data", tmp_path / "ids.json", ports, tmp_path / "run")

    assert f"-s3.localSocket={tmp_path / 'run' / 's3.sock'}" in flags
    assert f"-filer.localSocket={tmp_path / 'run' / 'filer.sock'}" in flags


def test_a_run_dir_too_long_for_a_socket_keeps_the_default(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    ports = dict.fromkeys(INTERNAL_SERVERS, 1)
    deep = tmp_path / ("x" * 120)
    flags = mini_flags(settings, tmp_path / "data", tmp_path / "ids.json", ports, deep)

    assert not [flag for flag in flags if "localSocket" in flag]
