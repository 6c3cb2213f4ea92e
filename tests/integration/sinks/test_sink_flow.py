"""The sink on the real stack: matched streams in, locked PCAPs and manifests out."""

from __future__ import annotations

import asyncio
import gc
import io
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from scapy.utils import RawPcapNgReader, RawPcapReader

from sinks.verify import verify_prefix
from streamtap.schema import RuleSettings

pytestmark = pytest.mark.integration


async def test_matched_streams_land_byte_identical_and_verified(
    harness: Any, corpus_http_dns: list[Any], corpus_sll: list[Any], helpers: Any
) -> None:
    messages = helpers.build_messages(corpus_http_dns, "node-a", helpers.web_and_dns)
    everything = lambda proto, a, b: {"all": RuleSettings()}  # noqa: E731
    messages += helpers.build_messages(corpus_sll, "node-b", everything)
    # at-least-once upstream: a few segments arrive twice
    duplicates = messages[::7]
    await harness.produce(messages + duplicates)

    stop, task = await harness.run_inprocess()
    await harness.wait_for(helpers.expected_segments(messages))
    stop.set()
    service = await task

    found = harness.stored_segments()
    assert set(found) == helpers.expected_segments(messages)
    assert set(found.values()) == {1}, "a segment was stored twice"

    for rule in ("web", "dns"):
        expected = Counter(
            (p.ts_ns, p.data) for m in messages if rule in m.rules for p in m.record.packets
        )
        assert harness.stored_packets(rule) == expected
    assert harness.stored_packets("all") == Counter((p.ts_ns, p.data) for p in corpus_sll)

    manifests = harness.manifests()
    for manifest in manifests:
        data = harness.store.get(manifest["key"])
        reader = RawPcapReader(io.BytesIO(data))
        assert reader.linktype in manifest["linktypes"]
        times = [meta.sec * 10**9 + meta.usec for _, meta in reader]
        assert times == sorted(times), "packets are not in capture-time order"
        lock = harness.store.lock_state(manifest["key"], None)
        assert (
            lock.mode
            == {"web": "GOVERNANCE", "dns": "COMPLIANCE", "all": "GOVERNANCE"}[
                manifest["rule"]["name"]
            ]
        )
        assert lock.legal_hold == (manifest["rule"]["name"] == "dns")

    report = verify_prefix(harness.store, harness.prefix + "/", datetime.now(UTC))
    assert report.ok, report.problems
    assert report.objects == len(manifests) and report.chains >= 4
    assert service.stats.objects == len(manifests)

    if shutil.which("tshark"):
        for manifest in manifests:
            path = harness.tmp / "object.pcap"
            path.write_bytes(harness.store.get(manifest["key"]))
            done = subprocess.run(
                ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert len(done.stdout.split()) == manifest["counts"]["packets"]


async def test_restarted_sink_continues_each_chain(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = helpers.build_messages(corpus_http_dns, "node-a", helpers.web_and_dns)
    half = len(messages) // 2
    await harness.produce(messages[:half])
    stop, task = await harness.run_inprocess()
    await harness.wait_for(helpers.expected_segments(messages[:half]))
    stop.set()
    await task

    await harness.produce(messages[half:])
    stop, task = await harness.run_inprocess()
    await harness.wait_for(helpers.expected_segments(messages))
    stop.set()
    await task

    report = await asyncio.to_thread(
        verify_prefix, harness.store, harness.prefix + "/", datetime.now(UTC)
    )
    assert report.ok, report.problems
    assert set(harness.stored_segments().values()) == {1}


async def test_running_sink_keeps_its_startup_heap_frozen(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    """While the sink runs, what existed at its start is out of the collector's full passes
    (``gc.freeze``) and those passes are rarer; once it stops, an in-process caller gets its
    collector back as it was."""
    messages = helpers.build_messages(corpus_http_dns, "node-a", helpers.web_and_dns)
    await harness.produce(messages)
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    stop, task = await harness.run_inprocess()
    await harness.wait_for(helpers.expected_segments(messages))
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[2] > before[2], "full passes are rarer while it runs"
    stop.set()
    await task
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
async def test_mixed_link_types_from_one_node(
    harness: Any, corpus_http_dns: list[Any], corpus_sll: list[Any], helpers: Any, fmt: str
) -> None:
    everything = lambda proto, a, b: {"all": RuleSettings()}  # noqa: E731
    messages = helpers.build_messages(corpus_http_dns + corpus_sll, "node-a", everything)
    await harness.produce(messages)
    stop, task = await harness.run_inprocess(format=fmt, max_batch_bytes=10**7)
    await harness.wait_for(helpers.expected_segments(messages))
    stop.set()
    await task

    stored: Counter[tuple[int, int, bytes]] = Counter()
    for manifest in harness.manifests():
        data = harness.store.get(manifest["key"])
        assert manifest["key"].endswith("." + fmt)
        if fmt == "pcap":
            reader = RawPcapReader(io.BytesIO(data))
            assert manifest["linktypes"] == [reader.linktype]
            if "_lt" in manifest["key"]:  # its batch held several link types: split
                assert manifest["key"].endswith(f"_lt{reader.linktype}.pcap")
            stored.update((reader.linktype, m.sec * 10**9 + m.usec, d) for d, m in reader)
        else:
            for d, m in RawPcapNgReader(io.BytesIO(data)):
                stored[(m.linktype, (m.tshigh << 32) | m.tslow, d)] += 1
        if shutil.which("tshark"):
            path = harness.tmp / f"object.{fmt}"
            path.write_bytes(data)
            done = subprocess.run(["tshark", "-r", str(path)], capture_output=True, check=False)
            assert done.returncode == 0, done.stderr
    expected = Counter((p.linktype, p.ts_ns, p.data) for m in messages for p in m.record.packets)
    assert stored == expected
    assert verify_prefix(harness.store, harness.prefix + "/", datetime.now(UTC)).ok
