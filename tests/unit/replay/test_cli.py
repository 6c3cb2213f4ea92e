"""The CLI commands on local captures (no network): tap --no-serve, jobs, argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from replay.cli import jobs, replay, tap
from replay.dissect import dissect_capture
from replay.jobs import JobStore
from replay.query import compile_query
from replay.store import EntryStore

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
CAPTURE = CORPUS / "http11-keepalive-gzip-5req.pcap"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMTAP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STREAMTAP_CONFIG", raising=False)
    return tmp_path


def test_tap_no_serve_fills_the_store_and_jobs_lists_it(env: Path) -> None:
    db = env / "tap.db"
    result = CliRunner().invoke(tap, ["--pcap", str(CAPTURE), "--no-serve", "--db", str(db)])
    assert result.exit_code == 0, result.output
    want = [e["id"] for r in dissect_capture(CAPTURE.read_bytes(), "x") for e in r.entries]
    got = [r["id"] for r in EntryStore(db).page(compile_query(""), size=1000).rows]
    assert len(got) == len(want) > 0
    listed = CliRunner().invoke(jobs, ["--json"])
    assert listed.exit_code == 0
    (job,) = json.loads(listed.output)
    assert job["state"] == "done" and job["entries"] == len(want)


def test_bad_kfl_is_refused_with_a_caret(env: Path) -> None:
    result = CliRunner().invoke(tap, ["--pcap", str(CAPTURE), "--no-serve", "--kfl", "http and"])
    assert result.exit_code == 2
    assert "^" in result.output and "line 1" in result.output


def test_replay_needs_a_source(env: Path) -> None:
    result = CliRunner().invoke(replay, [])
    assert result.exit_code == 2 and "SOURCE" in result.output


def test_cancel_of_an_unknown_job_fails_and_of_a_known_one_leaves_a_request(env: Path) -> None:
    assert CliRunner().invoke(jobs, ["cancel", "nope"]).exit_code == 1
    CliRunner().invoke(tap, ["--pcap", str(CAPTURE), "--no-serve", "--db", str(env / "t.db")])
    store = JobStore(env / "home" / "replay" / "jobs")
    (job,) = store.list()
    assert CliRunner().invoke(jobs, ["cancel", job.id]).exit_code == 0
    assert store.cancel_requested(job.id)


def test_resume_of_an_unknown_job_fails(env: Path) -> None:
    result = CliRunner().invoke(replay, ["--resume", "20990101-000000-beef"])
    assert result.exit_code == 1 and "no job" in result.output
