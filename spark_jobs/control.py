"""Start, stop and watch the streaming job (``spark_jobs.job``) as a Ray job, for `ray-app stream`.

The job is submitted through Ray's job API, so it shows in the Ray dashboard with its logs and its RayDP actors.
At most one runs per checkpoint directory (the driver also holds a lock on it). Its environment is the head's plus
the caller's parsed settings minus every secret (``ray_app.ray_cluster.job_environment``); secrets (passwords, API
keys, credentials in URLs) never go into the job's metadata, where the dashboard would show them: give them to the
Ray head's environment or the config file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient

from ray_app.config import Settings
from ray_app.ray_cluster import ACTIVE, JobApiError, job_client, job_environment, stop_grace

if TYPE_CHECKING:
    from spark_jobs.status import StreamStatus

ENTRYPOINT = "python -m ray_app stream driver"
JOB_METADATA = {"ray_app": "stream"}


class StreamControlError(JobApiError):
    """Something a person has to act on about the streaming job (it failed, another one runs)."""


def stream_jobs(jobs: JobSubmissionClient) -> list[JobDetails]:
    return [job for job in jobs.list_jobs() if (job.metadata or {}).get("ray_app") == JOB_METADATA["ray_app"]]


def running_job(jobs: JobSubmissionClient) -> JobDetails | None:
    return next((job for job in stream_jobs(jobs) if job.status in ACTIVE), None)


def submit(settings: Settings, config_file: str | None = None, reset: bool = False) -> tuple[str, bool]:
    """Submit the streaming job unless one is running; (submission id, whether submitted now).

    ``reset``: the job discards the checkpoints before it starts, where it runs (the checkpoints are the cluster's,
    not this machine's: a CLI elsewhere has none to delete); refused while a job runs."""
    jobs = job_client(settings)
    current = running_job(jobs)
    if current is not None:
        if reset:
            raise StreamControlError(
                f"the streaming job {current.submission_id} is running: `ray-app stream stop` first, then --reset"
            )
        return current.submission_id or current.job_id or "?", False
    from spark_jobs.status import SUBMISSION_ENV

    submission_id = f"ray-app-stream-{time.strftime('%Y%m%d-%H%M%S')}"
    jobs.submit_job(
        entrypoint=f"{ENTRYPOINT} --reset" if reset else ENTRYPOINT,
        submission_id=submission_id,
        runtime_env={
            "env_vars": {
                **job_environment(settings, config_file),
                SUBMISSION_ENV: submission_id,
                **stop_grace(settings),
            }
        },
        metadata=dict(JOB_METADATA),
    )
    return submission_id, True


def stop(settings: Settings, timeout_s: float = 90) -> list[str]:
    """Stop every running streaming job (SIGTERM: the driver stops its queries); the ids stopped."""
    jobs = job_client(settings)
    stopped = []
    for job in stream_jobs(jobs):
        if job.status in ACTIVE and job.submission_id:
            jobs.stop_job(job.submission_id)
            stopped.append(job.submission_id)
    deadline = time.monotonic() + timeout_s
    while stopped and time.monotonic() < deadline:
        if all(jobs.get_job_status(sid) not in ACTIVE for sid in stopped):
            break
        time.sleep(1)
    return stopped


@dataclass(frozen=True)
class Lag:
    """How far a query is behind the Kafka topics it reads: messages not yet in a committed batch."""

    query: str
    messages: int | None  # None: the query has not committed a batch yet


@dataclass(frozen=True)
class TopicLag:
    """One query's lag on one of the topics it reads."""

    query: str
    topic: str
    messages: int | None  # None: the query has not committed a batch yet (and the topic holds messages)


def topic_lags(settings: Settings, job: JobDetails | None = None) -> list[TopicLag]:
    """Per topic the stream reads: end offsets of the topic now minus the offsets its last committed batch reached.
    With a ``job``, only the status its driver wrote counts: a previous driver's file says nothing about it."""
    from ray_app.kafka_topics import end_offsets
    from spark_jobs.kafka_source import topics_read
    from spark_jobs.status import read_status
    from spark_jobs.supervisor import QUERY

    status = read_status(settings)
    if status is not None and job is not None and not written_by(status, job):
        status = None
    names = topics_read(settings)
    ends = end_offsets(settings, sorted(names))
    committed = status.queries[QUERY].committed_offsets if status and QUERY in status.queries else {}
    result = []
    for name in names:
        end = ends.get(name, {})
        if not committed:
            result.append(TopicLag(QUERY, name, None if sum(end.values()) else 0))
            continue
        done = committed.get(name, {})
        result.append(TopicLag(QUERY, name, sum(max(offset - done.get(str(p), 0), 0) for p, offset in end.items())))
    return result


def lags(settings: Settings, job: JobDetails | None = None) -> list[Lag]:
    """The stream's lag, summed over its topics (``topic_lags``)."""
    per_query: dict[str, list[int | None]] = {}
    for lag in topic_lags(settings, job):
        per_query.setdefault(lag.query, []).append(lag.messages)
    return [
        Lag(query, None if any(m is None for m in counts) else sum(m or 0 for m in counts))
        for query, counts in per_query.items()
    ]


def written_by(status: StreamStatus, job: JobDetails) -> bool:
    """Whether ``job``'s driver wrote ``status``: by submission id, or, for a driver submitted without it (by hand,
    `ray job submit`), by a start no earlier than the job's."""
    if status.submission_id is not None:
        return status.submission_id == job.submission_id
    from ray_app.times import parse_rfc3339_ns

    return job.start_time is not None and parse_rfc3339_ns(status.started_at) >= job.start_time * 1_000_000


def wait_caught_up(settings: Settings, submission_id: str, timeout_s: float, on_tick=None) -> list[Lag]:
    """Block until this job's driver runs its queries and they have committed everything Kafka holds now (on empty
    topics too: not before the driver says it runs); raise if the job ends or time runs out."""
    from spark_jobs.status import read_status

    jobs = job_client(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        state = jobs.get_job_status(submission_id)
        if state not in ACTIVE:
            tail = "\n".join(jobs.get_job_logs(submission_id).splitlines()[-15:])
            raise StreamControlError(f"streaming job {submission_id} ended ({state.value}); last log lines:\n{tail}")
        job = jobs.get_job_info(submission_id)
        current = lags(settings, job) if state == JobStatus.RUNNING else []
        if on_tick:
            on_tick(state, current)
        status = read_status(settings) if current else None
        running = status is not None and written_by(status, job) and status.state == "running"
        if running and all(lag.messages == 0 for lag in current):
            return current
        if time.monotonic() > deadline:
            raise StreamControlError(
                f"the streaming job had not caught up after {timeout_s:.0f} s (lags: "
                + ", ".join(f"{lag.query} {lag.messages}" for lag in current)
                + "); it keeps running"
            )
        time.sleep(2)
