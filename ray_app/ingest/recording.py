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
from ray_app.schemas import DeadLetter, Source


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


RAW_TAIL_BYTES = 64 * 1024  # how much of an unreadable recording's rest a dead letter keeps


def read_frames(path: Path) -> Iterator[RecordedFrame | DeadLetter]:
    """The recording's frames; an entry that is not a recorded frame is a dead letter, and bytes that are not
    msgpack end the recording with one dead letter holding (the start of) the rest."""
    with path.open("rb") as file:
        unpacker = msgpack.Unpacker(file, raw=False)
        while True:
            position = unpacker.tell()
            try:
                entry = unpacker.unpack()
            except msgpack.OutOfData:
                return
            except Exception as exc:  # corrupt or truncated: msgpack cannot find the next entry's start
                file.seek(position)
                rest = file.read(RAW_TAIL_BYTES)
                detail = (
                    f"the recording {path.name} cannot be read from byte {position} on: {type(exc).__name__}: {exc}"
                )
                yield parse.dead_letter(rest, "unparseable", detail, Source.REPLAY)
                return
            if _is_recorded_frame(entry):
                frame = entry["frame"].encode() if isinstance(entry["frame"], str) else entry["frame"]
                yield RecordedFrame(entry["feed"], entry["received_ns"], frame)
            else:
                detail = f"entry at byte {position} of {path.name} is not a recorded frame (feed, received_ns, frame)"
                yield parse.dead_letter(parse.raw_json(entry), "unparseable", detail, Source.REPLAY)


def _is_recorded_frame(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("feed"), str)
        and isinstance(entry.get("received_ns"), int)
        and isinstance(entry.get("frame"), bytes | str)
    )


def frame_items(frame: bytes, source: Source, allowed: Collection[str] | None) -> list[IngestItem]:
    """One websocket frame -> its records and dead letters (control messages are skipped)."""
    return split_frame(frame, source, allowed)[0]


def split_frame(frame: bytes, source: Source, allowed: Collection[str] | None) -> tuple[list[IngestItem], bytes]:
    """One websocket frame, decoded once -> its records and dead letters, and the frame with only its well-formed
    control messages (connected, auth, subscription, errors). That is all alpaca-py needs to drive the protocol,
    since records are taken from the raw frame; so no message, however malformed, can reach alpaca-py's decoder
    and cost the rest of the frame or the connection."""
    try:
        # non-string map keys are a problem of one message, not of the frame
        messages = msgpack.unpackb(frame, strict_map_key=False)
    except Exception as exc:
        return [parse.dead_letter(frame, "unparseable", f"not a msgpack frame: {exc}", source)], _EMPTY_FRAME
    if not isinstance(messages, list):
        letter = parse.dead_letter(frame, "unparseable", "a frame must be a msgpack array of messages", source)
        return [letter], _EMPTY_FRAME
    items: list[IngestItem] = []
    control = []
    for message in messages:
        item = parse.stream_message(message, source, allowed)
        if item is not None:
            items.append(item)
        elif isinstance(message, dict) and message.get("T") in parse.CONTROL_TYPES:
            control.append(message)
    return items, frame if len(control) == len(messages) else msgpack.packb(control)


_EMPTY_FRAME = msgpack.packb([])


def replay(
    path: Path, allowed: Collection[str] | None, speed: float, stop: StopFlag, on_idle=None
) -> Iterator[IngestItem]:
    """The recording's records at ``speed`` x the pace they were received (0: as fast as possible)."""
    for recorded in paced(read_frames(path), lambda f: getattr(f, "received_ns", None), speed, stop, on_idle):
        if isinstance(recorded, DeadLetter):
            yield recorded
        else:
            yield from frame_items(recorded.frame, Source.REPLAY, allowed)
