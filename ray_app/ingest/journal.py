"""A spill journal: the records Kafka could not take yet, kept on local disk in order, sent first when it can.

The live sources push records whether or not Kafka is there. When the brokers are away, librdkafka's bounded queue
fills, then a bounded queue in memory, and from then on every record is appended here (msgpack entries
``{topic, key, value}``) instead of being held in memory or dropped; once Kafka takes records again the journal is
sent in order before anything newer. Records librdkafka still holds when a run ends are purged into it too, so the
next run sends them. The journal is bounded (``ingest.spill_max_mb``): beyond that, records are dropped, counted
and reported, never silently.

Entries are removed only when everything read from the journal has been delivered; a run that dies while sending
it sends it again (at least once: the deterministic document ids make Elasticsearch hold each record once).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack


class JournalBusy(RuntimeError):
    """Another process holds the journal."""


@dataclass(frozen=True)
class JournalEntry:
    topic: str
    key: bytes | None
    value: bytes

    def size(self) -> int:
        return len(self.value) + len(self.key or b"") + len(self.topic) + 16


class SpillJournal:
    """An append-only file of entries with a read position; thread-safe."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise JournalBusy(
                f"another ingest is using the spill journal {path}: run one ingest per source and state_dir at a time"
            ) from None
        self._read_offset = 0

    def __len__(self) -> int:
        """Bytes written and not yet read back."""
        with self._lock:
            return max(self._file.tell() - self._read_offset, 0)

    def pending(self) -> bool:
        return len(self) > 0

    def append(self, entry: JournalEntry) -> bool:
        """Keep an entry; False when the journal is full (the caller counts the drop)."""
        data = _packed(entry)
        with self._lock:
            if self._file.tell() + len(data) > self.max_bytes:
                return False
            self._file.write(data)
            return True

    def read(self, limit: int = 1000) -> list[JournalEntry]:
        """The next entries after the read position (at most ``limit``), in the order they were appended."""
        with self._lock:
            self._file.flush()
            end = self._file.tell()
            if self._read_offset >= end:
                return []
            entries: list[JournalEntry] = []
            with self.path.open("rb") as file:
                file.seek(self._read_offset)
                unpacker = msgpack.Unpacker(file, raw=False)
                for raw in unpacker:
                    entries.append(JournalEntry(raw["topic"], raw["key"], raw["value"]))
                    if len(entries) >= limit:
                        break
                self._read_offset += unpacker.tell()
            return entries

    def clear_if_read(self) -> bool:
        """Empty the file once every entry has been read (the caller has seen them delivered)."""
        with self._lock:
            self._file.flush()
            if self._read_offset < self._file.tell():
                return False
            self._file.truncate(0)
            self._file.seek(0)
            self._read_offset = 0
            return True

    def put_front(self, entries: list[JournalEntry]) -> None:
        """Make ``entries`` the oldest ones, ahead of what is not read yet; what was read (delivered, or among
        ``entries`` again) goes."""
        with self._lock:
            self._file.flush()
            with self.path.open("rb") as file:
                file.seek(self._read_offset)
                unread = file.read()
            self._file.truncate(0)
            self._file.seek(0)
            for entry in entries:
                self._file.write(_packed(entry))
            self._file.write(unread)
            self._read_offset = 0

    def entries(self) -> Iterator[JournalEntry]:
        """Every entry in the file, without moving the read position (for reports and tests)."""
        with self._lock:
            if not self._file.closed:
                self._file.flush()
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            for raw in msgpack.Unpacker(file, raw=False):
                yield JournalEntry(raw["topic"], raw["key"], raw["value"])

    def count(self) -> int:
        """Entries in the file (read or not)."""
        return sum(1 for _ in self.entries())

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _packed(entry: JournalEntry) -> bytes:
    return msgpack.packb({"topic": entry.topic, "key": entry.key, "value": entry.value}, use_bin_type=True)
