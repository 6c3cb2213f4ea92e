"""Settings: env vars, the YAML file, precedence, and error messages that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamtap.settings import CONFIG_ENV, Settings, SettingsError, load_settings

ALIASES = [
    info.validation_alias
    for info in Settings.model_fields.values()
    if isinstance(info.validation_alias, str)
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the variables they set, not the developer's shell."""
    for name in [*ALIASES, CONFIG_ENV]:
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.s3_endpoint == "http://127.0.0.1:8333"
    assert settings.streams_topic == "streams"
    assert settings.matched_topic == "matched-streams"


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "kafka:29092,kafka2:29092")
    monkeypatch.setenv("S3_ENDPOINT", "https://s3.example.com/")
    monkeypatch.setenv("S3_BUCKET", "my-recordings")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("TOPIC_PARTITIONS", "24")
    monkeypatch.setenv("STREAMTAP_HOME", str(tmp_path))

    settings = load_settings()

    assert settings.kafka_bootstrap == "kafka:29092,kafka2:29092"
    assert settings.s3_endpoint == "https://s3.example.com"
    assert settings.s3_bucket == "my-recordings"
    assert settings.aws_region == "eu-west-1"
    assert settings.topic_partitions == 24
    assert settings.home == tmp_path


def test_yaml_file_accepts_env_and_field_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "streamtap.yaml"
    config.write_text("S3_BUCKET: from-file\nstreams_topic: file-streams\nKAFKA_PORT: 19092\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))

    settings = load_settings()

    assert settings.s3_bucket == "from-file"
    assert settings.streams_topic == "file-streams"
    assert settings.kafka_port == 19092


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "streamtap.yaml"
    config.write_text("s3_bucket: from-file\n")
    monkeypatch.setenv("S3_BUCKET", "from-env")
    assert load_settings(config).s3_bucket == "from-env"


def test_explicit_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PORT", "1234")
    assert load_settings(kafka_port=4321).kafka_port == 4321


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_BOOTSTRAP", "no-port-here"),
        ("S3_ENDPOINT", "s3.example.com:9000"),
        ("S3_BUCKET", "Bad_Bucket"),
        ("TOPIC_PARTITIONS", "0"),
        ("KAFKA_PORT", "not-a-number"),
        ("MAX_MESSAGE_BYTES", "10"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as bad:
        load_settings()
    assert str(bad.value).startswith(f"{variable}: ")


def test_a_bad_value_in_the_file_names_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "streamtap.yaml"
    config.write_text("S3_PORT: 99999\n")
    with pytest.raises(SettingsError, match=r"^S3_PORT: "):
        load_settings(config)


@pytest.mark.parametrize("content", ["- a list\n- not a mapping\n", "key: [unclosed\n"])
def test_a_malformed_file_is_reported(tmp_path: Path, content: str) -> None:
    config = tmp_path / "streamtap.yaml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=CONFIG_ENV):
        load_settings(config)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml")


@pytest.mark.parametrize(("value", "enabled"), [("", False), ("   ", False), ("http", True)])
def test_recording_kfl_blank_means_off(
    monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool
) -> None:
    monkeypatch.setenv("RECORDING_KFL", value)
    assert load_settings().recording_enabled is enabled


def test_recording_is_off_when_unset() -> None:
    assert load_settings().recording_enabled is False


@pytest.mark.parametrize("heap", ["512m", "1g", "2G", "1048576k"])
def test_kafka_heap_accepts_jvm_sizes(monkeypatch: pytest.MonkeyPatch, heap: str) -> None:
    monkeypatch.setenv("KAFKA_HEAP", heap)
    assert load_settings().kafka_heap == heap


@pytest.mark.parametrize("heap", ["notaheap", "1 g", "-1g", "0m"])
def test_kafka_heap_rejects_other_values(monkeypatch: pytest.MonkeyPatch, heap: str) -> None:
    monkeypatch.setenv("KAFKA_HEAP", heap)
    with pytest.raises(SettingsError, match=r"^KAFKA_HEAP: "):
        load_settings()
