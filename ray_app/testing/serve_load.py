"""A bounded loopback load on a Serve app and its replica counts over time, read from Serve's own status: what the
autoscaling test asserts on and what `bench/serve.py --autoscale` prints."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx


@dataclass
class Sample:
    seconds: float  # since the load started
    loaded: bool  # the load was on
    running: dict[str, int]  # RUNNING replicas per deployment
    requests: int  # answered so far


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> how many

    def peak(self, deployment: str) -> int:
        return max((s.running.get(deployment, 0) for s in self.samples), default=0)

    def first_at(self, deployment: str, replicas: int) -> float | None:
        return next((s.seconds for s in self.samples if s.running.get(deployment, 0) >= replicas), None)


def running_replicas(app_name: str) -> dict[str, int]:
    """RUNNING replicas per deployment of ``app_name``, as `serve status` reports them."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return {}
    return {
        name: sum(
            count
            for state, count in deployment.replica_states.items()
            if str(getattr(state, "value", state)) == "RUNNING"
        )
        for name, deployment in app.deployments.items()
    }


def load_and_watch(
    app_name: str,
    urls: Sequence[str],
    *,
    concurrency: int,
    load_s: float,
    settle_until: Mapping[str, int],
    settle_s: float,
    headers: Mapping[str, str] | None = None,
    every_s: float = 1.0,
    stop_when: Mapping[str, int] | None = None,
) -> Timeline:
    """``concurrency`` clients cycle through ``urls`` for ``load_s`` seconds (or until every deployment in
    ``stop_when`` has that many replicas), then the replicas are watched until each deployment is back at
    ``settle_until`` (at most ``settle_s`` more)."""
    timeline = Timeline()
    loaded = threading.Event()
    loaded.set()
    answered = [0]
    lock = threading.Lock()

    def client(offset: int) -> None:
        with httpx.Client(timeout=120, headers=dict(headers or {})) as http:
            n = offset
            while loaded.is_set():
                try:
                    status = http.get(urls[n % len(urls)]).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    answered[0] += 1
                    timeline.statuses[status] = timeline.statuses.get(status, 0) + 1
                n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()

    def sample() -> dict[str, int]:
        running = running_replicas(app_name)
        timeline.samples.append(Sample(round(time.monotonic() - began, 1), loaded.is_set(), running, answered[0]))
        return running

    while time.monotonic() - began < load_s:
        running = sample()
        if stop_when and all(running.get(name, 0) >= count for name, count in stop_when.items()):
            break
        time.sleep(every_s)
    loaded.clear()
    for thread in threads:
        thread.join(150)
    stopped = time.monotonic()
    while time.monotonic() - stopped < settle_s:
        running = sample()
        if all(running.get(name, 0) <= count for name, count in settle_until.items()):
            break
        time.sleep(every_s)
    return timeline


def timeline_table(timeline: Timeline, deployments: Sequence[str]) -> list[list[str]]:
    """Rows for a table: a row whenever a replica count changed (and the first and last), with the load's state."""
    rows: list[list[str]] = []
    last: tuple[int, ...] | None = None
    for i, s in enumerate(timeline.samples):
        counts = tuple(s.running.get(name, 0) for name in deployments)
        if counts != last or i == len(timeline.samples) - 1:
            rows.append([f"{s.seconds:.0f}", "on" if s.loaded else "off", f"{s.requests:,}", *map(str, counts)])
            last = counts
    return rows
