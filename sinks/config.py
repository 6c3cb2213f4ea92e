"""The sink's own settings, read from the same environment as ``streamtap.settings``.

They live here rather than in the shared model because only the sink reads them. Every batch,
queue and spill area has a cap, and each cap is one of these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streamtap.settings import SettingsError

__all__ = ["SinkSettings", "load_sink_settings"]

MiB = 1024 * 1024


class SinkSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    group_id: str = Field("streamtap-sink", validation_alias="SINK_GROUP")
    prefix: str = Field("recordings", validation_alias="SINK_PREFIX")
    format: Literal["pcap", "pcapng"] = Field("pcap", validation_alias="SINK_FORMAT")
    max_batch_bytes: int = Field(64 * MiB, ge=1024, validation_alias="SINK_MAX_BATCH_BYTES")
    max_batch_age_s: float = Field(60.0, gt=0, validation_alias="SINK_MAX_BATCH_AGE_S")
    max_batch_messages: int = Field(100_000, ge=1, validation_alias="SINK_MAX_BATCH_MESSAGES")
    max_pending_bytes: int = Field(256 * MiB, ge=0, validation_alias="SINK_MAX_PENDING_BYTES")
    max_pending_batches: int = Field(32, ge=1, le=200, validation_alias="SINK_MAX_PENDING_BATCHES")
    spill_dir: Path | None = Field(None, validation_alias="SINK_SPILL_DIR")
    max_spill_bytes: int = Field(4096 * MiB, ge=0, validation_alias="SINK_MAX_SPILL_BYTES")
    part_size: int = Field(16 * MiB, ge=5 * MiB, validation_alias="SINK_PART_SIZE")
    parallel_parts: int = Field(3, ge=1, le=32, validation_alias="SINK_PARALLEL_PARTS")
    upload_workers: int = Field(4, ge=1, le=64, validation_alias="SINK_UPLOAD_WORKERS")
    #: batches one upload worker stores at once: the next batch's objects go up while the
    #: previous batch's manifests and commit are pending (manifests and commits stay in order)
    batches_in_flight: int = Field(2, ge=1, le=16, validation_alias="SINK_BATCHES_IN_FLIGHT")
    default_retention_days: int | None = Field(
        None, ge=1, validation_alias="SINK_DEFAULT_RETENTION_DAYS"
    )
    default_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        "GOVERNANCE", validation_alias="SINK_DEFAULT_LOCK_MODE"
    )
    sse: Literal["", "SSE-S3", "SSE-KMS"] = Field("", validation_alias="SINK_SSE")
    sse_kms_key_id: str = Field("", validation_alias="SINK_SSE_KMS_KEY_ID")
    addressing: Literal["auto", "path", "virtual"] = Field("auto", validation_alias="S3_ADDRESSING")
    retry_base_s: float = Field(0.2, gt=0, validation_alias="SINK_RETRY_BASE_S")
    retry_max_s: float = Field(10.0, gt=0, validation_alias="SINK_RETRY_MAX_S")
    stats_interval_s: float = Field(30.0, gt=0, validation_alias="SINK_STATS_INTERVAL_S")
    stats_port: int = Field(0, ge=0, le=65535, validation_alias="SINK_STATS_PORT")
    shutdown_timeout_s: float = Field(60.0, gt=0, validation_alias="SINK_SHUTDOWN_TIMEOUT_S")

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


def load_sink_settings(**overrides: object) -> SinkSettings:
    """SinkSettings from the environment; SettingsError names the bad variable."""
    try:
        return SinkSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            info = SinkSettings.model_fields.get(field)
            alias = info.validation_alias if info else None
            problems.append(f"{alias if isinstance(alias, str) else field}: {err['msg']}")
        raise SettingsError("; ".join(problems)) from None
