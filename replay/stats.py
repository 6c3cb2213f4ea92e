"""Statistics over the entries a KFL query selects: what the dashboard draws.

One pass over the matching rows (indexed columns only; the JSON is parsed only when the query
needs the Python predicate) feeds every figure, so a statistics refresh costs one scan however
many charts there are. Over a large store the pass is split by rowid range across the store's
worker processes and the pieces merged (``replay.aggregate``); a query with ``limit()`` means
"the first n in time order", which only one ordered pass can honour. Time buckets are chosen
from the data's own span so a five-second capture and a five-day recording both give a readable
chart of about sixty bars.
"""

from __future__ import annotations

from typing import Any

from replay.aggregate import COLUMNS, figures, tally
from replay.query import Query
from replay.store import EntryStore

__all__ = ["statistics"]


def statistics(store: EntryStore, query: Query) -> dict[str, Any]:
    """Every dashboard figure for the entries ``query`` selects."""
    t = store.parallel_tally(query)
    if t is None:
        t = tally(store.matching(query, COLUMNS))
    return figures(t, query.text)
