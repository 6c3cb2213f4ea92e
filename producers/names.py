"""Names for addresses, learned from DNS answers seen in the capture.

An entry's ``dst.name`` (and ``src.name``) is the name the client looked up to reach that
address: for ``www.example.com CNAME edge.cdn.net``, ``edge.cdn.net A 192.0.2.7`` the address
192.0.2.7 is named ``www.example.com`` (the question), not the CDN's internal name. The table is
an LRU with a size cap, so a resolver's worth of answers cannot grow it without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

__all__ = ["NameTable"]

_MAX_CHAIN: Final = 16  # CNAME hops followed back to the question; more is a loop


class NameTable:
    """ip text -> name, most recently learned kept when the cap bites (``evicted`` counts)."""

    def __init__(self, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self.evicted = 0
        self._names: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def name(self, ip: str) -> str:
        """The name learned for ``ip``, or ``""``."""
        return self._names.get(ip, "")

    def learn(self, request: dict[str, Any] | None, response: dict[str, Any] | None) -> int:
        """Take a DNS entry's ``request``/``response`` (ENTRY.md shape); returns names learned."""
        if not response:
            return 0
        answers = response.get("answers")
        if not isinstance(answers, list):
            return 0
        questions = {
            str(q.get("name", "")).rstrip(".").lower()
            for q in (request or {}).get("questions") or []
            if isinstance(q, dict)
        }
        alias_of: dict[str, str] = {}  # CNAME target -> the name that pointed at it
        for ans in answers:
            if isinstance(ans, dict) and ans.get("type") == "CNAME" and ans.get("cname"):
                target = str(ans["cname"]).rstrip(".").lower()
                alias_of.setdefault(target, str(ans.get("name", "")).rstrip("."))
        learned = 0
        for ans in answers:
            if not isinstance(ans, dict) or ans.get("type") not in ("A", "AAAA"):
                continue
            ip = ans.get("ip")
            name = str(ans.get("name", "")).rstrip(".")
            if not ip or not name:
                continue
            for _ in range(_MAX_CHAIN):
                if name.lower() in questions:
                    break
                up = alias_of.get(name.lower())
                if up is None:
                    break
                name = up
            self._set(str(ip), name)
            learned += 1
        return learned

    def _set(self, ip: str, name: str) -> None:
        names = self._names
        names[ip] = name
        names.move_to_end(ip)
        while len(names) > self.max_entries:
            names.popitem(last=False)
            self.evicted += 1
