"""The REST API, in-process through httpx.ASGITransport (no server, no sockets)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpx
import pytest

from pipeline.kfl import compile as kfl_compile
from producers.capture import CaptureReader
from replay.app import create_app
from replay.service import make_manager
from replay.store import EntryStore
from replay.testing import population
from streamtap.schema import StreamRecord
from streamtap.settings import load_settings

RECORDS = list(population(250, seed=21))
ENTRIES = [e for r in RECORDS for e in r.entries]


def _fake_dissect(data: bytes, node: str) -> Iterable[StreamRecord]:
    """Stands in for the sensor engine: every 'capture' yields the test population."""
    return RECORDS


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = EntryStore(tmp_path / "api.db")
    store.add_records(RECORDS[:200])
    settings = load_settings(home=tmp_path / "home")
    app = create_app(store, make_manager(settings, store, dissect=_fake_dissect))
    app.state.store = store
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://replay") as c:
        yield c


async def test_entries_page_through_a_filter(client: httpx.AsyncClient) -> None:
    q = "http and response.status >= 400"
    expected = [e["id"] for r in RECORDS[:200] for e in r.entries if kfl_compile(q)(e)]
    got: list[str] = []
    params: dict[str, str | int] = {"q": q, "size": 7}
    while True:
        resp = await client.get("/api/entries", params=params)
        assert resp.status_code == 200
        body = resp.json()
        got += [row["id"] for row in body["rows"]]
        if body["cursor"] is None:
            break
        params["cursor"] = body["cursor"]
    assert got == expected
    count = (await client.get("/api/count", params={"q": q})).json()
    assert count == {"count": len(expected), "total": 200}


async def test_bad_kfl_is_a_400_with_line_column_and_caret(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/entries", params={"q": "http and ("})
    assert resp.status_code == 400
    detail = resp.json()["detail"]
    assert detail["line"] == 1 and detail["column"] >= 9
    assert detail["caret"].rstrip().endswith("^")


async def test_check_endpoint(client: httpx.AsyncClient) -> None:
    ok = (await client.post("/api/kfl/check", json={"query": "dns"})).json()
    assert ok == {"ok": True, "error": None}
    bad = (await client.post("/api/kfl/check", json={"query": 'http and\n  foo("x")'})).json()
    assert bad["ok"] is False
    assert bad["error"]["line"] == 2
    assert "^" in bad["error"]["caret"]


async def test_one_entry_and_404(client: httpx.AsyncClient) -> None:
    e = ENTRIES[3]
    resp = await client.get(f"/api/entries/{e['id']}")
    assert resp.status_code == 200 and resp.json()["id"] == e["id"]
    assert (await client.get("/api/entries/nope-1")).status_code == 404
    red = await client.get(f"/api/entries/{e['id']}", params={"q": 'redact("src.ip")'})
    assert red.json()["src"]["ip"] == "[REDACTED]"


async def test_stream_pcap_download(client: httpx.AsyncClient) -> None:
    rec = RECORDS[10]
    resp = await client.get(f"/api/streams/{rec.stream_id}/pcap")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert "attachment" in resp.headers["content-disposition"]
    frames = list(CaptureReader(io.BytesIO(resp.content)))
    assert frames == [(p.ts_ns, p.linktype, p.wirelen, p.data) for p in rec.packets]
    assert (await client.get("/api/streams/ffff/pcap")).status_code == 404


async def test_matching_pcap_download(client: httpx.AsyncClient) -> None:
    q = 'dst.name == "checkout.payments"'
    resp = await client.get("/api/pcap", params={"q": q})
    frames = list(CaptureReader(io.BytesIO(resp.content)))
    matching = [r for r in RECORDS[:200] if any(kfl_compile(q)(e) for e in r.entries)]
    assert len(frames) == sum(len(r.packets) for r in matching) > 0


async def test_stats(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/stats", params={"q": "dns"})).json()
    assert set(body["protocols"]) == {"DNS"}
    assert body["total"] == sum(
        1 for r in RECORDS[:200] for e in r.entries if kfl_compile("dns")(e)
    )
    for key in ("status_over_time", "top_talkers", "latency_ms", "timeline", "service_map"):
        assert key in body


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/entries",
        "/api/entries/{entry_id}",
        "/api/count",
        "/api/streams/{stream_id}/pcap",
        "/api/pcap",
        "/api/stats",
        "/api/kfl/check",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
    ):
        assert path in paths


async def test_dashboard_is_served(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    assert resp.status_code == 200 and "<html" in resp.text.lower()


async def test_job_into_the_store_runs_to_done(client: httpx.AsyncClient, tmp_path: Path) -> None:
    capture = tmp_path / "x.pcap"
    capture.write_bytes(b"not used by the stand-in engine")
    spec = {"source": str(capture), "to_store": True, "kfl": "http"}
    resp = await client.post("/api/jobs", json=spec)
    assert resp.status_code == 201
    job_id = resp.json()["id"]
    for _ in range(3000):
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        if job["state"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.01)
    assert job["state"] == "done", job
    http_streams = sum(1 for r in RECORDS if kfl_compile("http")(r.entries[0]))
    assert job["streams_kept"] == http_streams
    status = (await client.get("/api/status")).json()
    assert status["entries"] == 200 + sum(
        1 for r in RECORDS[200:] if kfl_compile("http")(r.entries[0])
    )
    jobs = (await client.get("/api/jobs")).json()
    assert [j["id"] for j in jobs] == [job_id]


async def test_job_with_bad_kfl_is_refused(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/jobs", json={"source": "x", "kfl": "(("})
    assert resp.status_code == 400


async def test_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/jobs/nope")).status_code == 404
    assert (await client.post("/api/jobs/nope/cancel")).status_code == 404
