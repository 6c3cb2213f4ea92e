"""Other packages import the stack only through `stack.__all__`; every name there must exist."""

from __future__ import annotations

import stack


def test_every_exported_name_exists() -> None:
    missing = [name for name in stack.__all__ if not hasattr(stack, name)]
    assert missing == []


def test_the_public_api_is_what_other_packages_use() -> None:
    assert {"LocalStack", "TopicSpec", "ensure_topics", "free_port", "settings_env"} <= set(
        stack.__all__
    )
