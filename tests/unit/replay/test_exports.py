"""The package's public API is what ``__all__`` says (httpx's test_exported_members habit)."""

from __future__ import annotations

import replay


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(replay) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(replay, name)).__name__ == "module"}
    assert set(replay.__all__) == public - modules
