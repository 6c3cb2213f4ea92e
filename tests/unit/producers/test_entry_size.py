"""``entry_size`` and ``json_text_size`` (the engine's record-size accounting) against
``len(orjson.dumps(...))``, which they shortcut."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture import open_capture
from producers.engine import Engine
from producers.records import entry_size, entry_size_parts, json_text_size, json_text_slack

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


def test_json_text_size_on_every_ascii_character() -> None:
    every = "".join(chr(i) for i in range(128))
    for text in (every, every * 7, "", '"', "\\", "\x00", "\x7f", '{"k": "v"}' * 40):
        assert json_text_size(text) == len(orjson.dumps(text)), repr(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=600))
def test_json_text_size_on_any_ascii_text(text: str) -> None:
    assert json_text_size(text) == len(orjson.dumps(text))


def _http_entry(request_text: object, response_text: object) -> dict[str, object]:
    return {
        "id": "s-0",
        "index": 0,
        "request": {"method": "POST", "postData": {"mimeType": "text/plain", "text": request_text}},
        "response": {"status": 200, "content": {"mimeType": "x", "size": 3, "text": response_text}},
        "extra": True,
    }


def test_entry_size_on_generated_entries_and_leaves_them_unchanged() -> None:
    rnd = random.Random(3)
    pieces = ['"k": "v", ', "\\", "\n", "\x01", "a" * 50, "é", "\u2028", "\t"]
    for _ in range(400):
        texts = ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 80))) for _ in "ab"]
        entry = _http_entry(*texts)
        before = orjson.dumps(entry)
        assert entry_size(entry) == len(before)
        assert orjson.dumps(entry) == before  # same values, same key order
    for odd in (None, 5, ["x" * 300], {"t": "y" * 300}):
        entry = _http_entry(odd, "z" * 300)
        assert entry_size(entry) == len(orjson.dumps(entry))
    assert entry_size({"request": "x" * 300, "response": None}) == len(
        orjson.dumps({"request": "x" * 300, "response": None})
    )


def test_entry_size_on_every_corpus_entry() -> None:
    entries = 0
    long_texts = 0
    for path in sorted(CORPUS.glob("*.pcap*")):
        for record in Engine("t").feed_all(open_capture(path)):
            for entry in record.entries:
                assert entry_size(entry) == len(orjson.dumps(entry)), (path.name, entry["id"])
                entries += 1
                long_texts += len(str(entry.get("response", ""))) > 300
    assert entries > 1000 and long_texts > 50


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=600))
def test_json_text_slack_bounds_the_text_size(text: str) -> None:
    assert json_text_size(text) - 2 <= json_text_slack(text)


def test_entry_size_parts_add_up_to_entry_size_and_leave_entries_unchanged() -> None:
    """The engine counts an entry as ``entry_size_parts``' size plus, for each text it
    returns, ``json_text_size - 2`` (when a cut may depend on it; ``json_text_slack`` until
    then): together exactly ``len(orjson.dumps(entry))``."""
    rnd = random.Random(5)
    pieces = ['"k": "v", ', "\\", "\n", "\x01", "a" * 50, "\t", "\x7f"]
    long_texts = 0
    for i in range(400):
        texts = ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 80))) for _ in "ab"]
        if i % 10 == 0:
            texts[1] += "é"  # not ASCII: serialised with the rest, not returned
        entry = _http_entry(*texts)
        before = orjson.dumps(entry)
        size, found = entry_size_parts(entry)
        assert orjson.dumps(entry) == before
        assert size + sum(json_text_size(t) - 2 for t in found) == len(before)
        assert all(t in texts for t in found)
        long_texts += len(found)
    assert long_texts > 100
