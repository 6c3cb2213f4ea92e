"""``streamtap pipeline --check``: the rules a worker would load, without Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import pipeline


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("STREAMTAP_CONFIG", raising=False)
    monkeypatch.delenv("RECORDING_RULES", raising=False)
    return CliRunner()


def test_check_lists_rules_and_reports_the_broken_one(runner: CliRunner, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text('rules:\n  web: http\n  bad: "dns and ("\n')
    result = runner.invoke(
        pipeline, ["--check", "--rules", str(rules)], env={"RECORDING_KFL": "http or dns"}
    )
    assert result.exit_code == 1
    assert "recording: http or dns" in result.output and "web: http" in result.output
    assert "rule 'bad'" in result.output and "^" in result.output and "not loaded" in result.output


def test_check_without_rules_says_recording_is_off(runner: CliRunner) -> None:
    result = runner.invoke(pipeline, ["--check"], env={"RECORDING_KFL": ""})
    assert result.exit_code == 0
    assert "recording is off" in result.output


def test_worker_option_defaults_are_the_config_defaults() -> None:
    """The CLI imports nothing of Faust until it runs, so its defaults are written twice."""
    from pipeline.app import PipelineConfig

    defaults = {p.name: p.default for p in pipeline.params}
    config = PipelineConfig(settings=None)  # type: ignore[arg-type]
    assert defaults["fetch_wait_ms"] == config.fetch_wait_ms
    assert defaults["recent_mb"] * 1024 * 1024 == config.recent_bytes
    assert defaults["batch_size"] == config.batch_size
    assert defaults["max_pending"] == config.max_pending
    assert defaults["idle_records"] == config.idle_records
