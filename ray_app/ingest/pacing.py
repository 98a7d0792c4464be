"""Release timed items at ``speed`` x real time (or as fast as possible), keeping their order."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ray_app.lifecycle import StopFlag

T = TypeVar("T")


def paced(
    items: Iterable[T],
    time_ns_of: Callable[[T], int | None],
    speed: float,
    stop: StopFlag,
    on_idle: Callable[[float], None] | None = None,
) -> Iterator[T]:
    """Yield each item when ``(its time - the first item's time) / speed`` has passed on the wall clock.

    ``speed <= 0`` means as fast as possible; an item without a time goes at once. ``on_idle(seconds)`` is called
    instead of sleeping, so a producer can serve delivery reports while it waits.
    """
    start_wall: float | None = None
    start_event = 0
    for item in items:
        if stop.is_set():
            return
        event = time_ns_of(item) if speed > 0 else None
        if event is not None:
            if start_wall is None:
                start_wall, start_event = time.monotonic(), event
            due = start_wall + (event - start_event) / 1e9 / speed
            while (wait := due - time.monotonic()) > 0 and not stop.is_set():
                chunk = min(wait, 0.1)
                if on_idle:
                    on_idle(chunk)
                else:
                    stop.wait(chunk)
        yield item
