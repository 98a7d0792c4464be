"""A small thread-safe cache of answers, bounded in age (TTL) and size (the oldest go first)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class TtlCache:
    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """(True, the fresh value of ``key``) or (False, None). Not a sentinel object: Serve ships an ingress class
        by value, and a copied sentinel would never be the module's."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and self.clock() - hit[0] < self.ttl_s:
            return True, hit[1]
        return False, None

    def put(self, key: Hashable, value: Any) -> None:
        now = self.clock()
        with self._lock:
            self._entries.pop(key, None)  # re-inserted last: the dict's order is the entries' age
            self._entries[key] = (now, value)
            for stale in [k for k, (at, _) in self._entries.items() if now - at >= self.ttl_s]:
                del self._entries[stale]
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
