"""The package's public API is what ``__all__`` lists (other packages import only these)."""

from __future__ import annotations

import producers.dissect as dissect


def test_all_names_exist_and_contract_is_exported() -> None:
    for name in dissect.__all__:
        assert hasattr(dissect, name), name
    for name in ("select_dissector", "Dissector", "Item", "Direction", "DissectError"):
        assert name in dissect.__all__


def test_dissectors_implement_the_contract() -> None:
    for cls in (dissect.Http1Dissector, dissect.DnsDissector):
        assert issubclass(cls, dissect.Dissector)
        assert cls.name in ("http", "dns")
