"""The ingest's counters in the platform's metrics (``ray_app.metrics``), published as deltas once a second.

Counting each delivery straight into ``ray.util.metrics`` would cost a call per message on the hot path; the
producer counts in plain integers and this thread publishes the change, so Prometheus holds exactly the run's
report (``IngestReport``) once the last delta is out (``close`` publishes it after the final flush).
"""

from __future__ import annotations

import threading

from ray_app import metrics
from ray_app.ingest.producer import Counters

PUBLISH_EVERY_S = 1.0
FAILURE_REASONS = ("delivery", "dropped", "dead_letter")  # Kafka refused it | the spill journal was full | parsed bad


class IngestMetering:
    def __init__(self, counters: Counters, source: str) -> None:
        self.counters = counters
        self.source = source
        self._sent_topics: dict[str, int] = {}
        self._sent_failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-metrics", daemon=True)

    def start(self) -> IngestMetering:
        """Publish once a second, when this process records metrics at all (a run outside Ray costs nothing)."""
        if not metrics.recording():
            return self
        for reason in FAILURE_REASONS:
            metrics.start_at_zero("ingest_failures", source=self.source, reason=reason)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(PUBLISH_EVERY_S):
            self.publish()

    def publish(self) -> None:
        for topic, count in list(self.counters.delivered_by_topic.items()):
            metrics.inc("ingest_messages", count - self._sent_topics.get(topic, 0), source=self.source, topic=topic)
            self._sent_topics[topic] = count
        counts = (self.counters.failed, self.counters.dropped, self.counters.dead_letters)
        for reason, count in zip(FAILURE_REASONS, counts, strict=True):
            metrics.inc(
                "ingest_failures", count - self._sent_failures.get(reason, 0), source=self.source, reason=reason
            )
            self._sent_failures[reason] = count

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.publish()
