"""The dashboard in real headless Chromium (Debian's, driven by Playwright).

Loads a store made from corpus captures (through the sensor engine) plus the replay test kit's
population (which has service names, so the service map has something to draw), then does what
an investigator does: filter, mistype, open an entry, download PCAPs. Screenshots of the main
views go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.kfl import compile as kfl_compile
from producers.capture import CaptureReader
from replay.app import create_app
from replay.dissect import dissect_capture
from replay.jobs import JobSpec
from replay.query import compile_query
from replay.server import DashboardServer
from replay.service import make_manager
from replay.store import EntryStore
from replay.testing import population
from streamtap.settings import load_settings

ROOT = Path(__file__).parents[2]
CORPUS = ROOT / "tests" / "data" / "corpus"
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CAPTURES = [
    "mixed-wikipedia-http-dns.pcap",
    "http11-keepalive-gzip-5req.pcap",
    "http11-head-500.pcap",
    "dns-nxdomain.pcap",
    "dns-mx.pcap",
    "http11-basicauth-304.pcap",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EntryStore]]:
    store = EntryStore(tmp_path_factory.mktemp("browser") / "tap.db")
    for name in CAPTURES:
        store.add_records(list(dissect_capture((CORPUS / name).read_bytes(), "corpus")))
    store.add_records(list(population(800, seed=9)))
    server = DashboardServer(create_app(store)).start()
    try:
        yield server.url, store
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-browser.sh (make setup does)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1440, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def _shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))  # type: ignore[attr-defined]


def _apply(page: object, store: EntryStore, query: str) -> int:
    """Type and apply a filter, then wait until the table shows exactly its matches."""
    n = store.count(compile_query(query))
    page.fill("#kfl", query)  # type: ignore[attr-defined]
    page.click("#apply")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "([n, rows]) => document.querySelector('#count').textContent.startsWith(n + ' of')"
        " && document.querySelectorAll('#entries tbody tr').length == rows",
        arg=[f"{n:,}", min(n, 100)],
    )
    return n


def _row_count(page: object) -> int:
    return page.locator("#entries tbody tr").count()  # type: ignore[attr-defined]


def test_filter_error_detail_and_downloads(dashboard, browser) -> None:
    url, store = dashboard
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#entries tbody tr")
    assert _row_count(page) == 100  # first page
    page.wait_for_function("document.querySelector('#count').textContent.includes('entries')")
    assert f"{store.total():,}" in page.locator("#count").inner_text()
    _shot(page, "entries")

    # A filter changes the table to exactly the matching entries.
    query = "http and response.status >= 500"
    _apply(page, store, query)
    expected = [e["id"] for e in _all(store) if kfl_compile(query)(e)]
    assert 0 < len(expected) < 100
    page.wait_for_function(
        f"document.querySelectorAll('#entries tbody tr').length == {len(expected)}"
    )
    ids = page.eval_on_selector_all("#entries tbody tr", "rows => rows.map(r => r.dataset.id)")
    assert ids == expected
    assert page.locator("#recent-list button", has_text=query).count() == 1
    _shot(page, "filtered")

    # An invalid query shows the server's error with a caret, inline, and leaves the table alone.
    page.fill("#kfl", "http and response.status >= ")
    page.wait_for_selector("#kfl-error:not([hidden])")
    error = page.locator("#kfl-error").inner_text()
    assert "line 1, column" in error and error.rstrip().endswith("^")
    assert "invalid" in (page.get_attribute("#kfl", "class") or "")
    assert _row_count(page) == len(expected)
    _shot(page, "kfl-error")

    # Open a DNS entry: the detail pane shows its sections.
    page.fill("#kfl", 'dns and response.code == "Non-Existent Domain"')
    page.wait_for_selector("#kfl-error", state="hidden")
    _apply(page, store, 'dns and response.code == "Non-Existent Domain"')
    page.locator("#entries tbody tr").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    body = page.locator("#detail-body").inner_text()
    assert "answers" in body.lower() and "authorities" in body.lower()
    assert "Non-Existent Domain" in body

    # Open an HTTP entry with a JSON body: headers and the pretty-printed body are shown.
    _apply(page, store, 'http and response.content.mimeType == "application/json"')
    first = page.locator("#entries tbody tr").first
    stream = first.get_attribute("data-stream")
    first.click()
    page.wait_for_selector("#detail:not([hidden])")
    body = page.locator("#detail-body").inner_text()
    assert "response headers" in body.lower() and '"user": {' in body
    _shot(page, "detail")

    # Download the stream's PCAP: byte-identical to what the store holds for that stream.
    with page.expect_download() as got:
        page.click("#download-stream")
    data = Path(got.value.path()).read_bytes()
    assert data == store.stream_pcap(stream)
    frames = list(CaptureReader(io.BytesIO(data)))
    assert frames == store.stream_frames(stream)

    # And the PCAP of everything matching the filter.
    with page.expect_download() as got:
        page.click("#download-matching")
    frames = list(CaptureReader(io.BytesIO(Path(got.value.path()).read_bytes())))
    streams = {e["stream"] for e in _all(store) if kfl_compile(page.input_value("#kfl"))(e)}
    assert len(frames) == sum(len(store.stream_frames(s)) for s in streams)
    page.close()


def test_statistics_view_draws_every_chart(dashboard, browser) -> None:
    url, _ = dashboard
    page = browser.new_page()
    # The kit's population is one afternoon; the corpus captures span years.
    page.goto(url + '?q=timestamp >= datetime("2026-11-27T00:00:00Z")')
    page.click("#tab-stats")
    for chart in ("protocols", "status", "talkers", "latency", "timeline", "map"):
        page.wait_for_selector(f"#chart-{chart} svg")
    assert page.locator("#chart-map svg path").count() > 3
    _shot(page, "statistics")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("figure:has(#chart-map)").screenshot(path=str(SHOTS / "service-map.png"))
    page.fill("#kfl", "dns")
    page.click("#apply")
    page.wait_for_function(
        "[...document.querySelectorAll('#chart-protocols svg text')].every("
        "t => !t.textContent.startsWith('HTTP '))"
    )
    page.close()


def _all(store: EntryStore) -> list[dict]:
    out = []
    for values in store.matching(compile_query(""), "entry_id"):
        entry = store.entry(values[0])
        assert entry is not None
        out.append(entry)
    return out


#: The stand-in engine below hands out object i's records only once the test sets GATES[i],
#: so the test sees the table at each step of a running replay without sleeping.
GATES = [threading.Event() for _ in range(3)]
CHUNK = 40


def _gated_dissect(data: bytes, node: str) -> list:
    i = int(data)
    if not GATES[i].wait(120):
        raise AssertionError(f"the test never released object {i}")
    start = 1_800_000_000_000 + i * 3_600_000
    return list(population(CHUNK, seed=i, start_ms=start, first_id=1_000_000 * (i + 1)))


def test_the_table_fills_while_the_replay_runs(browser, tmp_path: Path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    for i in range(len(GATES)):
        (folder / f"{i}.pcap").write_bytes(str(i).encode())
    store = EntryStore(tmp_path / "live.db")
    settings = load_settings(home=tmp_path / "home")
    manager = make_manager(settings, store, dissect=_gated_dissect)
    server = DashboardServer(create_app(store, manager)).start()
    page = browser.new_page()
    try:
        page.goto(server.url)
        page.wait_for_selector("#count")
        job = manager.submit(JobSpec(source=str(folder), to_store=True, parallel=1))
        for i, gate in enumerate(GATES):
            gate.set()
            page.wait_for_function(
                "n => document.querySelectorAll('#entries tbody tr').length == n",
                arg=CHUNK * (i + 1),
            )
            if i < len(GATES) - 1:
                assert manager.get(job.id).state == "running"  # type: ignore[union-attr]
        page.wait_for_selector("#status:has-text('entries')")
        assert manager.wait(job.id, 60).state == "done"  # type: ignore[union-attr]
    finally:
        page.close()
        for gate in GATES:
            gate.set()
        server.stop()


def test_screenshots_exist() -> None:
    """Runs last in this file: the docs copy these (see docs/replay.md)."""
    names = {p.stem for p in SHOTS.glob("*.png")}
    assert {"entries", "filtered", "kfl-error", "detail", "statistics"} <= names
    shutil.disk_usage(SHOTS)
