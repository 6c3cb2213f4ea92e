"""One settings model for every command and service.

Values come from (highest first) explicit overrides, environment variables, an optional YAML
file (``STREAMTAP_CONFIG`` or ``--config``), then defaults that work against the local stack.
Env var names match Kubeshark's where Kubeshark had one (``RECORDING_KFL``, ``S3_BUCKET``,
``AWS_REGION``) so a user moving over keeps their muscle memory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["Settings", "SettingsError", "default_home", "load_settings"]

CONFIG_ENV = "STREAMTAP_CONFIG"


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable and the problem."""


def default_home() -> Path:
    """Where the local stack keeps its state when STREAMTAP_HOME is not set."""
    return Path.cwd() / ".streamtap"


class Settings(BaseSettings):
    """Every setting streamtap reads. Field aliases are the env var names users set."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP")
    streams_topic: str = Field("streams", validation_alias="STREAMS_TOPIC")
    matched_topic: str = Field("matched-streams", validation_alias="MATCHED_TOPIC")
    stats_topic: str = Field("streamtap.stats", validation_alias="STATS_TOPIC")
    control_topic: str = Field("streamtap.control", validation_alias="CONTROL_TOPIC")
    deadletter_topic: str = Field("streamtap.deadletter", validation_alias="DEADLETTER_TOPIC")
    topic_partitions: int = Field(6, ge=1, le=1000, validation_alias="TOPIC_PARTITIONS")
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        validation_alias="MAX_MESSAGE_BYTES",
    )

    # S3
    s3_endpoint: str = Field("http://127.0.0.1:8333", validation_alias="S3_ENDPOINT")
    s3_bucket: str = Field("streamtap-recordings", validation_alias="S3_BUCKET")
    aws_region: str = Field("us-east-1", validation_alias="AWS_REGION")
    aws_access_key_id: str = Field("streamtap", validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str = Field(
        "streamtap-secret-key",
        validation_alias="AWS_SECRET_ACCESS_KEY",
    )

    # Recording
    recording_kfl: str = Field("", validation_alias="RECORDING_KFL")
    node_name: str = Field(
        default_factory=lambda: os.uname().nodename,
        validation_alias="NODE_NAME",
    )

    # Local stack
    home: Path = Field(default_factory=default_home, validation_alias="STREAMTAP_HOME")
    kafka_port: int = Field(9092, ge=1, le=65535, validation_alias="KAFKA_PORT")
    kafka_controller_port: int = Field(
        9093,
        ge=1,
        le=65535,
        validation_alias="KAFKA_CONTROLLER_PORT",
    )
    kafka_heap: str = Field("1g", validation_alias="KAFKA_HEAP")
    s3_port: int = Field(8333, ge=1, le=65535, validation_alias="S3_PORT")

    @property
    def recording_enabled(self) -> bool:
        """Kubeshark semantics: an unset or blank RECORDING_KFL means recording is off."""
        return bool(self.recording_kfl.strip())

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("kafka_heap")
    @classmethod
    def _check_heap(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", value):
            raise ValueError(f"expected a JVM heap size such as 512m or 1g, got {value!r}")
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("s3_bucket")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        ok = 3 <= len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
        if not ok or any(not (c.islower() or c.isdigit() or c in "-.") for c in value):
            raise ValueError(
                f"{value!r} is not a valid S3 bucket name (3-63 chars: a-z, 0-9, '-', '.')"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _alias_of(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise SettingsError(
            f"{CONFIG_ENV}: cannot read config file {path}: {exc.strerror}"
        ) from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{CONFIG_ENV}: {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{CONFIG_ENV}: {path} must hold a mapping of setting: value")
    return data


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings once, at the edge, and raise SettingsError naming the bad variable.

    The YAML file may use either env var names (``KAFKA_BOOTSTRAP``) or field names
    (``kafka_bootstrap``); environment variables override it.
    """
    path = config or os.environ.get(CONFIG_ENV)
    file_values = _read_yaml(Path(path)) if path else {}
    # Environment wins over the file: drop file keys that the environment also sets.
    values: dict[str, Any] = {}
    for key, value in file_values.items():
        values[str(key)] = value
    for name in Settings.model_fields:
        alias = _alias_of(name)
        if alias in os.environ:
            values.pop(name, None)
            values.pop(alias, None)
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            name = _alias_of(field) if field in Settings.model_fields else field
            problems.append(f"{name}: {err['msg']}")
        raise SettingsError("; ".join(problems)) from None
