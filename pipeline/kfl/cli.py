"""``streamtap kfl``: check a query, or filter JSON-lines entries with one."""

from __future__ import annotations

import sys

import click

from pipeline.kfl import KFLError, Query, compile
from pipeline.kfl.jsonl import Match, Summary, filter_lines

__all__ = ["kfl"]


@click.group()
def kfl() -> None:
    """Check and evaluate KFL queries."""


def _compile_or_exit(query: str, now_ms: int | None) -> Query:
    try:
        return compile(query, now_ms=now_ms)
    except KFLError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@kfl.command()
@click.argument("query")
def check(query: str) -> None:
    """Print QUERY in normal form with its warnings, or the error with a caret (exit 1)."""
    q = _compile_or_exit(query, None)
    click.echo(q.normalized if q.normalized else "(empty query: matches every entry)")
    for warning in q.warnings:
        click.echo(f"warning: {warning}")
    if q.limit is not None:
        click.echo(f"limit: {q.limit}")
    for path in q.redactions:
        click.echo(f"redact: {path}")


@kfl.command("eval")
@click.argument("query")
@click.option("--now-ms", type=int, default=None, help="Fix now() (unix ms); default: the clock.")
def eval_(query: str, now_ms: int | None) -> None:
    """Print the entries on stdin (JSON lines) that match QUERY, honouring limit() and redact()."""
    q = _compile_or_exit(query, now_ms)
    summary = Summary()
    out = sys.stdout.buffer
    for result in filter_lines(q, sys.stdin.buffer, summary):
        if isinstance(result, Match):
            out.write(result.json + b"\n")
        else:
            click.echo(f"line {result.line}: skipped, {result.reason}", err=True)
    out.flush()
    tail = ", stopped at limit" if summary.stopped_by_limit else ""
    click.echo(
        f"{summary.matched} matched of {summary.read} entries, "
        f"{summary.malformed} malformed line(s) skipped{tail}",
        err=True,
    )
