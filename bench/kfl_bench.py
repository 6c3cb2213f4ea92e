"""KFL benchmark: compile time, evaluations/s, a 50-rule set, and a naive tree-walker as peer.

Run: ``.venv/bin/python bench/kfl_bench.py`` (``--entries N`` for a quicker run). Rates use CPU
time (``time.process_time``) on one core. The tree-walking interpreter below is the baseline the
compiled closures are measured against in the same run, on the same entries; it is checked to
give the same answers first, so the ratio compares equal work.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lark import Token, Tree

from pipeline.kfl import compile, compile_many
from pipeline.kfl import values as V
from pipeline.kfl.functions import parse_datetime
from pipeline.kfl.query import _compiled
from pipeline.kfl.syntax import PROTOCOL_WORDS, parse, parser, regex_text, unescape

NOW_MS = 1_795_780_800_000  # 2026-11-27T12:00:00Z

TEN_RULES = [
    "http and response.status >= 500",
    'dns and response.code == "Non-Existent Domain"',
    "tcp and dst.port == 22",
    'http and request.method == "POST" and request.path.startsWith("/api/")',
    'http and request.headers["user-agent"] == r"(?i)^(curl|python-requests)/"',
    'src.namespace == "payments" or dst.namespace == "payments"',
    "http and elapsedTime > 1000",
    'dns and request.questions[*].name == r"\\.evil\\.example$"',
    'http and response.headers["content-type"].contains("json") and response.status == 200',
    "not (http or dns) and dst.port != 443",
]

# ---------------------------------------------------------------------------------------------
# realistic entries in the ENTRY.md shape

METHODS = ["GET"] * 12 + ["POST"] * 4 + ["PUT", "DELETE", "PATCH", "HEAD"]
STATUSES = (
    [200] * 30 + [201, 204, 301, 302, 304] * 2 + [400, 401, 403, 404, 404, 429] + [500, 502, 503]
)
PATHS = ["/api/v1/users", "/api/v1/orders", "/api/v2/cart", "/healthz", "/metrics", "/login", "/"]
AGENTS = [
    "curl/8.5.0",
    "python-requests/2.32",
    "Mozilla/5.0",
    "Go-http-client/1.1",
    "kube-probe/1.30",
]
NAMESPACES = ["shop", "payments", "storefront", "kube-system", "monitoring", ""]
NAMES = ["example.com", "api.shop.svc.cluster.local", "c2.evil.example", "nope.invalid", "s3.aws"]
RCODES = [(0, "No Error")] * 8 + [(3, "Non-Existent Domain"), (2, "Server Failure")]


def _common(rng: random.Random, i: int, proto: tuple[str, str, str], port: int) -> dict[str, Any]:
    name, abbr, l4 = proto
    src_ns, dst_ns = rng.choice(NAMESPACES), rng.choice(NAMESPACES)
    return {
        "id": f"{i:08x}-0",
        "stream": f"{i:08x}",
        "index": 0,
        "node": {"name": f"worker-{i % 3}", "ip": "172.18.0.3"},
        "protocol": {
            "name": name,
            "abbr": abbr,
            "version": "1.1" if name == "http" else "",
            "layer4": l4,
        },
        "src": {
            "ip": f"10.0.{i % 7}.{i % 250}",
            "port": 30000 + i % 30000,
            "name": "",
            "namespace": src_ns,
            "pod": "",
        },
        "dst": {
            "ip": f"10.1.{i % 5}.{i % 200}",
            "port": port,
            "name": "",
            "namespace": dst_ns,
            "pod": "",
        },
        "timestamp": NOW_MS - rng.randrange(3_600_000),
        "elapsedTime": int(rng.expovariate(1 / 80))
        if rng.random() > 0.03
        else rng.randrange(1000, 9000),
        "requestSize": rng.randrange(2000),
        "responseSize": rng.randrange(20000),
    }


def _http(rng: random.Random, i: int) -> dict[str, Any]:
    e = _common(rng, i, ("http", "HTTP", "tcp"), rng.choice([80, 8080, 443, 3000]))
    path = rng.choice(PATHS)
    status = rng.choice(STATUSES)
    mime = rng.choice(["application/json", "text/html", "text/plain"])
    e["request"] = {
        "method": rng.choice(METHODS),
        "url": path + (f"?id={i % 100}" if rng.random() < 0.3 else ""),
        "path": path,
        "pathSegments": [s for s in path.split("/") if s],
        "httpVersion": "HTTP/1.1",
        "headers": {"Host": "api.example", "User-Agent": rng.choice(AGENTS), "Accept": "*/*"},
        "cookies": {},
        "queryString": {},
        "headersSize": 120,
        "bodySize": 0,
    }
    if rng.random() < 0.9:
        e["response"] = {
            "status": status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "headers": {"Content-Type": mime, "Content-Length": "52"},
            "cookies": {},
            "content": {"mimeType": mime, "size": 52, "text": '{"ok": true}'},
            "headersSize": 80,
            "bodySize": 52,
        }
    return e


def _dns(rng: random.Random, i: int) -> dict[str, Any]:
    e = _common(rng, i, ("dns", "DNS", "udp"), 53)
    qname = rng.choice(NAMES)
    rcode, code = rng.choice(RCODES)
    e["request"] = {
        "opCode": "Query",
        "id": i % 65536,
        "questions": [{"name": qname, "type": rng.choice(["A", "AAAA"]), "class": "IN"}],
    }
    answers = (
        []
        if rcode
        else [
            {
                "name": qname,
                "type": "A",
                "class": "IN",
                "ttl": 300,
                "ip": f"93.184.{i % 200}.{i % 250}",
            }
        ]
    )
    e["response"] = {
        "code": code,
        "rcode": rcode,
        "answers": answers,
        "authorities": [],
        "additionals": [],
    }
    return e


def _bare(rng: random.Random, i: int) -> dict[str, Any]:
    if rng.random() < 0.7:
        return _common(rng, i, ("tcp", "TCP", "tcp"), rng.choice([22, 443, 5432, 6379, 9092]))
    return _common(rng, i, ("udp", "UDP", "udp"), rng.choice([4789, 123, 8472]))


def make_entries(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    makers = [_http] * 6 + [_dns] * 3 + [_bare]
    return [rng.choice(makers)(rng, i) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# BASELINE: a naive tree-walking interpreter over the lark parse tree. Not used by streamtap.
# It re-dispatches on node names, re-decodes literals and re-walks paths on every evaluation,
# which is what "interpret the tree" costs; the value rules themselves are KFL's own (values.py).


class NaiveInterpreter:
    def __init__(self, text: str) -> None:
        tree = parser().parse(text, start="start")
        self.root = tree.children[0] if tree.children else None

    def __call__(self, entry: Any) -> bool:
        return True if self.root is None else self.cond(self.root, entry)

    def cond(self, node: Any, e: Any) -> bool:
        kind = node.data
        if kind == "or_":
            return any(self.cond(c, e) for c in node.children)
        if kind == "and_":
            return all(self.cond(c, e) for c in node.children)
        if kind == "not_":
            return not self.cond(node.children[1], e)
        if kind == "paren":
            return self.cond(node.children[0], e)
        if kind == "compare":
            return self.compare(node, e)
        if kind == "path" and len(node.children) == 1 and node.children[0] in PROTOCOL_WORDS:
            field, want = PROTOCOL_WORDS[str(node.children[0])]
            proto = e.get("protocol") if isinstance(e, dict) else None
            return isinstance(proto, dict) and proto.get(field) == want
        return any(V.truthy(v) for v in self.values(node, e))

    def compare(self, node: Tree[Token], e: Any) -> bool:
        left, op, right = node.children
        for rx, other in ((left, right), (right, left)):
            if isinstance(rx, Tree) and rx.data == "regex":
                pattern = regex_text(str(rx.children[0])[2:-1])
                vals = self.values(other, e)
                hit = any(re.search(pattern, t) for t in V.texts(vals))
                return bool(vals) and (hit if op == "==" else not hit)
        return V.compare(str(op), self.values(left, e), self.values(right, e))

    def values(self, node: Any, e: Any) -> list[Any]:
        kind = node.data
        if kind == "number":
            text = str(node.children[0])
            return [int(text) if text.isdigit() else float(text)]
        if kind == "string":
            return [unescape(str(node.children[0])[1:-1], ValueError)]
        if kind in ("true", "false", "nil"):
            return [{"true": True, "false": False, "nil": None}[kind]]
        if kind == "call":
            return [self.call(node)]
        if kind == "path":
            return self.path(node, e)
        return [self.cond(node, e)]

    def call(self, node: Tree[Token]) -> Any:
        name = str(node.children[0])
        args = (
            [self.values(a, None)[0] for a in node.children[1].children]
            if node.children[1:]
            else []
        )
        if name == "datetime":
            return parse_datetime(args[0])
        units = {"seconds": 1e3, "minutes": 6e4, "hours": 3.6e6, "days": 8.64e7}
        return NOW_MS + args[0] * units[name] if name in units else NOW_MS

    def path(self, node: Tree[Token], e: Any) -> list[Any]:
        first, *steps = node.children
        vals = [e[str(first)]] if isinstance(e, dict) and str(first) in e else []
        prev = str(first)
        for step in steps:
            vals, prev = self.step(step, vals, prev)
        return vals

    def step(self, step: Any, vals: list[Any], prev: str) -> tuple[list[Any], str]:
        kind, kids = step.data, step.children
        if kind == "key":
            tok = kids[0]
            key = unescape(str(tok)[1:-1], ValueError) if tok.type == "STRING" else str(tok)
            out = []
            for v in vals:
                if isinstance(v, dict):
                    if prev == "headers":
                        out += [x for k, x in v.items() if k.lower() == key.lower()][:1]
                    elif key in v:
                        out.append(v[key])
            return out, key
        if kind == "wild":
            return [x for v in vals for x in (v.values() if isinstance(v, dict) else v)], "*"
        if kind == "index":
            i = int(str(kids[-1])) * (-1 if len(kids) == 2 else 1)
            return [v[i] for v in vals if isinstance(v, list) and -len(v) <= i < len(v)], ""
        if kind == "deep":
            return [x for v in vals for x in V.deep_find(v, str(kids[1]))], str(kids[1])
        name = str(kids[0])
        arg = self.values(kids[1].children[0], None)[0]
        tests: dict[str, Callable[[str], bool]] = {
            "startsWith": lambda t: t.startswith(arg),
            "endsWith": lambda t: t.endswith(arg),
            "contains": lambda t: arg in t,
            "matches": lambda t: re.search(arg, t) is not None,
        }
        return [any(tests[name](t) for t in V.texts(vals))], name


# ---------------------------------------------------------------------------------------------
# measurements


def cpu_rate(fn: Callable[[Any], Any], entries: list[Any], repeat: int = 3) -> float:
    """Best-of-``repeat`` calls per CPU second of ``fn`` over all entries."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for e in entries:
            fn(e)
        best = min(best, time.process_time() - start)
    return len(entries) / best


def compile_time_us(text: str, rounds: int = 200) -> float:
    """Parse + compile without the cache, mean microseconds."""
    start = time.process_time()
    for _ in range(rounds):
        parse(text)
        _compiled.__wrapped__(text, NOW_MS)  # type: ignore[attr-defined]
    return (time.process_time() - start) / rounds * 1e6


def fifty_rules() -> dict[str, str]:
    rules: dict[str, str] = {}
    for i, status in enumerate([500, 502, 503, 404, 401, 403, 429, 301, 302, 304]):
        rules[f"http-status-{i}"] = f"http and response.status == {status}"
    for i, path in enumerate([*PATHS, "/admin", "/debug", "/.env"]):
        rules[f"http-path-{i}"] = f'http and request.path.startsWith("{path}")'
    for i, name in enumerate([*NAMES, "x.evil.example", "dga.bad", "tunnel.example"]):
        rules[f"dns-name-{i}"] = f'dns and request.questions[*].name == "{name}"'
    for i, port in enumerate([22, 23, 3389, 5432, 6379, 9092, 4789, 8472, 11211, 27017]):
        proto = "tcp" if i < 6 else "udp"
        rules[f"{proto}-port-{i}"] = f"{proto} and dst.port == {port}"
    for i, ns in enumerate(NAMESPACES[:5]):
        rules[f"ns-{i}"] = f'src.namespace == "{ns}" and dst.namespace != "{ns}"'
    for i in range(4):
        rules[f"slow-{i}"] = f"elapsedTime > {500 * (i + 1)} and requestSize > {100 * i}"
    rules["any-5xx"] = "response.status >= 500"
    return rules


def machine() -> str:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
        f"load average at start {load:.1f}"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a `|` inside a markdown table cell must be escaped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=100_000)
    args = ap.parse_args()
    entries = make_entries(args.entries)
    print(f"# KFL benchmark: {len(entries)} entries; {machine()}\n")

    print("## compile time (parse + compile, no cache)\n")
    print("| rule | µs |\n|---|---:|")
    for text in TEN_RULES:
        print(f"| `{_cell(text)}` | {compile_time_us(text):.0f} |")

    hot = entries[:1000] * (len(entries) // 1000 or 1)
    print("\n## ten rules: evaluations per CPU second\n")
    print(f"cold: each of the {len(entries)} distinct entries once (most lookups miss the CPU")
    print(
        "cache); hot: the first 1000 entries again and again (an entry just decoded from Kafka)\n"
    )
    print(
        "| rule | matches | compiled cold | compiled hot | tree-walker cold | tree-walker hot "
        "| ratio cold | ratio hot |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    cold_ratios, hot_ratios = [], []
    naive_cold, naive_hot = entries[: max(1, len(entries) // 5)], hot[: max(1, len(hot) // 5)]
    for text in TEN_RULES:
        q, naive = compile(text, now_ms=NOW_MS), NaiveInterpreter(text)
        matches = sum(map(q, entries))
        assert [q(e) for e in naive_cold] == [naive(e) for e in naive_cold], text
        fast_cold, fast_hot = cpu_rate(q, entries), cpu_rate(q, hot)
        slow_cold, slow_hot = cpu_rate(naive, naive_cold, 1), cpu_rate(naive, naive_hot, 1)
        cold_ratios.append(fast_cold / slow_cold)
        hot_ratios.append(fast_hot / slow_hot)
        print(
            f"| `{_cell(text)}` | {matches} | {fast_cold:,.0f} | {fast_hot:,.0f} "
            f"| {slow_cold:,.0f} | {slow_hot:,.0f} "
            f"| {cold_ratios[-1]:.1f}x | {hot_ratios[-1]:.1f}x |"
        )
    print(
        f"\ngeometric mean speed-up over the tree-walker: "
        f"{statistics.geometric_mean(cold_ratios):.1f}x cold, "
        f"{statistics.geometric_mean(hot_ratios):.1f}x hot"
    )

    print("\n## 50 rules per entry\n")
    rules = fifty_rules()
    singles = [compile(t, now_ms=NOW_MS) for t in rules.values()]
    names = list(rules)
    many = compile_many(rules, now_ms=NOW_MS)
    for e in entries[:5000]:
        assert many(e) == [n for n, q in zip(names, singles, strict=True) if q(e)]

    def one_by_one(e: Any) -> list[str]:
        return [n for n, q in zip(names, singles, strict=True) if q(e)]

    many.stats = dict.fromkeys(many.stats, 0)
    rates = {
        (mode, label): cpu_rate(fn, data)
        for mode, data in (("cold", entries), ("hot", hot))
        for label, fn in (("single", one_by_one), ("many", many))
    }
    st = many.stats
    total = sum(st.values())
    print("| mode | cold entries/s | hot entries/s | hot rule decisions/s |\n|---|---:|---:|---:|")
    for label, title in (("single", "50 single queries"), ("many", "compile_many")):
        cold, hot_rate = rates["cold", label], rates["hot", label]
        print(f"| {title} | {cold:,.0f} | {hot_rate:,.0f} | {hot_rate * 50:,.0f} |")
    print(
        f"\ncompile_many is {rates['cold', 'many'] / rates['cold', 'single']:.1f}x (cold) and "
        f"{rates['hot', 'many'] / rates['hot', 'single']:.1f}x (hot) faster than 50 single "
        f"queries; per entry, dispatch skipped {st['skipped'] / total:.0%} of the rules, "
        f"equality indexes decided {st['indexed'] / total:.0%}, "
        f"{st['evaluated'] / total:.0%} ran one by one"
    )


if __name__ == "__main__":
    main()
