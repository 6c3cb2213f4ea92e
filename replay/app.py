"""The replay service's HTTP face: the dashboard's static files and a documented REST API.

Routes only parse input and call the store, the statistics and the job manager; every rule lives
in those services so the CLI, the API and the tests share one behaviour. Handlers are plain
``def`` so FastAPI runs them in its thread pool: SQLite and the KFL predicate are blocking work
and must not stall the event loop that serves other requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from replay.jobs import JobManager, JobSpec
from replay.query import KFLError, compile_query
from replay.query import Query as KQuery
from replay.stats import statistics
from replay.store import EntryStore, StoreError
from replay.summary import Row

__all__ = ["create_app"]

STATIC = Path(__file__).with_name("static")
PCAP_TYPE = "application/vnd.tcpdump.pcap"

Q = Annotated[str, Query(description="a KFL query; empty selects every entry")]


class KFLProblem(BaseModel):
    message: str
    line: int
    column: int
    caret: str = Field(description="the query with a caret under the problem")


class KFLCheck(BaseModel):
    ok: bool
    error: KFLProblem | None = None


class CheckBody(BaseModel):
    query: str


class EntryPage(BaseModel):
    rows: list[Row]
    cursor: str | None = Field(description="pass back as `cursor` for the next page; null at end")
    last: str | None = Field(
        description="the key of the last row (or the cursor given): poll from it for new entries"
    )
    limited: bool = Field(description="the query's limit(n) was reached")


class Count(BaseModel):
    count: int
    total: int = Field(description="entries in the store, matching or not")


def _problem(exc: KFLError) -> KFLProblem:
    return KFLProblem(
        message=exc.message,
        line=int(getattr(exc, "line", 1) or 1),
        column=int(getattr(exc, "column", 1) or 1),
        caret=str(exc),
    )


def _compile(q: str) -> KQuery:
    try:
        return compile_query(q)
    except KFLError as exc:
        raise HTTPException(status_code=400, detail=_problem(exc).model_dump()) from exc


def create_app(store: EntryStore, jobs: JobManager | None = None) -> FastAPI:
    """The app for one store (and, when given, the job manager that fills it or a topic)."""
    app = FastAPI(
        title="streamtap replay",
        version="1",
        description="Investigate recorded traffic: entries by KFL, PCAPs, statistics, replay jobs.",
    )

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/entries", response_model=EntryPage, tags=["entries"])
    def list_entries(
        q: Q = "",
        cursor: str | None = None,
        size: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """Entries matching `q`, oldest first, a page at a time (stable `(timestamp, id)` order)."""
        query = _compile(q)
        try:
            page = store.page(query, cursor, size)
        except StoreError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {"rows": page.rows, "cursor": page.cursor, "last": page.last,
                "limited": page.limited}  # fmt: skip

    @app.get("/api/count", response_model=Count, tags=["entries"])
    def count_entries(q: Q = "") -> Any:
        """How many entries match `q` (a full scan when the query needs more than SQL)."""
        return {"count": store.count(_compile(q)), "total": store.total()}

    @app.get("/api/entries/{entry_id}", tags=["entries"])
    def get_entry(entry_id: str, q: Q = "") -> dict[str, Any]:
        """One entry in full (with the `redact()` of `q` applied)."""
        entry = store.entry(entry_id, _compile(q) if q else None)
        if entry is None:
            raise HTTPException(status_code=404, detail=f"no entry {entry_id}")
        return entry

    @app.get(
        "/api/streams/{stream_id}/pcap",
        tags=["pcap"],
        response_class=Response,
        responses={200: {"content": {PCAP_TYPE: {}}}},
    )
    def stream_pcap(stream_id: str) -> Response:
        """The stream's packets exactly as captured, as a PCAP file."""
        data = store.stream_pcap(stream_id)
        if data is None:
            raise HTTPException(status_code=404, detail=f"no stream {stream_id}")
        return Response(
            data,
            media_type=PCAP_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{stream_id}.pcap"'},
        )

    @app.get(
        "/api/pcap",
        tags=["pcap"],
        response_class=StreamingResponse,
        responses={200: {"content": {PCAP_TYPE: {}}}},
    )
    def matching_pcap(q: Q = "") -> StreamingResponse:
        """Every stream with an entry matching `q`, merged in capture-time order (413 when
        their packets exceed the store's cap: narrow the filter)."""
        try:
            chunks: Iterator[bytes] = store.matching_pcap(_compile(q))
        except StoreError as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from exc
        return StreamingResponse(
            chunks,
            media_type=PCAP_TYPE,
            headers={"Content-Disposition": 'attachment; filename="streamtap-matching.pcap"'},
        )

    @app.get("/api/stats", tags=["statistics"])
    def stats(q: Q = "") -> dict[str, Any]:
        """Protocol mix, status codes over time, top talkers, latency percentiles, timeline,
        service map: every figure of the statistics view, for the entries matching `q`."""
        return statistics(store, _compile(q))

    @app.post("/api/kfl/check", response_model=KFLCheck, tags=["kfl"])
    def check_kfl(body: CheckBody) -> Any:
        """Compile a query; on error say where (line, column, and the caret text)."""
        try:
            compile_query(body.query)
        except KFLError as exc:
            return {"ok": False, "error": _problem(exc)}
        return {"ok": True}

    @app.get("/api/status", tags=["entries"])
    def status() -> dict[str, Any]:
        """What the store holds and what the jobs filling it are doing (the table polls it)."""
        return {
            "entries": store.total(),
            "streams": store.streams(),
            "jobs": [j.public() for j in jobs.list()] if jobs else [],
        }

    if jobs is not None:
        _job_routes(app, jobs)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _job_routes(app: FastAPI, jobs: JobManager) -> None:
    @app.get("/api/jobs", tags=["jobs"])
    def list_jobs() -> list[dict[str, Any]]:
        """Every replay job this service knows, newest first."""
        return [j.public() for j in jobs.list()]

    @app.post("/api/jobs", status_code=201, tags=["jobs"])
    def create_job(spec: JobSpec) -> JSONResponse:
        """Start a replay job; it runs in the background (poll its status)."""
        if spec.kfl:
            _compile(spec.kfl)
        job = jobs.submit(spec)
        return JSONResponse(job.public(), status_code=201)

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str) -> dict[str, Any]:
        """A job's state and progress counters."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        return job.public()

    @app.post("/api/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Ask a job to stop after the object it is on; its state file keeps what it did."""
        job = jobs.cancel(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        return job.public()
