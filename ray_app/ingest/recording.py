"""Record the Alpaca websocket's raw frames to a file, and read them back for replay.

A recording is a stream of msgpack maps ``{"feed", "received_ns", "frame"}``, where ``frame`` holds the bytes
exactly as the websocket delivered them (msgpack, as Alpaca sends them). Replay decodes them through the same
parser as the live source, so a recording reproduces a live session, bad frames included.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgpack

from ray_app.ingest import parse
from ray_app.ingest.pacing import paced
from ray_app.ingest.producer import IngestItem
from ray_app.lifecycle import StopFlag
from ray_app.schemas import Source


@dataclass(frozen=True)
class RecordedFrame:
    feed: str
    received_ns: int
    frame: bytes


class FrameRecorder:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: BinaryIO = path.open("ab")
        self.frames = 0

    def write(self, feed: str, frame: bytes | str) -> None:
        data = frame.encode() if isinstance(frame, str) else frame
        self._file.write(msgpack.packb({"feed": feed, "received_ns": time.time_ns(), "frame": data}))
        self.frames += 1
        if self.frames % 100 == 0:
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_frames(path: Path) -> Iterator[RecordedFrame]:
    with path.open("rb") as file:
        for entry in msgpack.Unpacker(file, raw=False):
            yield RecordedFrame(feed=entry["feed"], received_ns=entry["received_ns"], frame=entry["frame"])


def frame_items(frame: bytes, source: Source, allowed: Collection[str] | None) -> Iterator[IngestItem]:
    """One websocket frame -> its records and dead letters (control messages are skipped)."""
    try:
        messages = msgpack.unpackb(frame)
    except Exception as exc:
        yield parse.dead_letter(frame, "unparseable", f"not a msgpack frame: {exc}", source)
        return
    if not isinstance(messages, list):
        yield parse.dead_letter(frame, "unparseable", "a frame must be a msgpack array of messages", source)
        return
    for message in messages:
        item = parse.stream_message(message, source, allowed)
        if item is not None:
            yield item


def replay(path: Path, allowed: Collection[str] | None, speed: float, stop: StopFlag,
           on_idle=None) -> Iterator[IngestItem]:  # fmt: skip
    """The recording's records at ``speed`` x the pace they were received (0: as fast as possible)."""
    for recorded in paced(read_frames(path), lambda f: f.received_ns, speed, stop, on_idle):
        yield from frame_items(recorded.frame, Source.REPLAY, allowed)
