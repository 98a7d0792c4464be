"""The live platform's parts as Ray jobs: one registry, submitted once each, listed and stopped by name.

Every part is a Ray job with ``metadata={"ray_app": <name>}``, so the Ray dashboard's Jobs view lists them with
their logs and `ray-app status` / `ray-app down` find them whoever submitted them. A part with an active job is
never submitted again: `make run` a second time leaves what runs alone and starts only what is missing. The
environment a job gets is ``ray_app.ray_cluster.job_environment``'s (settings without secrets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient

from ray_app.config import Settings
from ray_app.live.parts import PART_NAMES, PARTS, STOP_ORDER
from ray_app.ray_cluster import ACTIVE, job_client, job_environment, stop_grace


def part_jobs(jobs: JobSubmissionClient) -> dict[str, list[JobDetails]]:
    """Every job of each part, newest first."""
    found: dict[str, list[JobDetails]] = {name: [] for name in PART_NAMES}
    for job in jobs.list_jobs():
        name = (job.metadata or {}).get("ray_app")
        if name in found:
            found[name].append(job)
    for listed in found.values():
        listed.sort(key=lambda job: job.start_time or 0, reverse=True)
    return found


def active(listed: list[JobDetails]) -> JobDetails | None:
    return next((job for job in listed if job.status in ACTIVE), None)


@dataclass(frozen=True)
class Started:
    part: str
    submission_id: str
    submitted: bool  # False: it was running already


def start_parts(settings: Settings, config_file: str | None, names: list[str] | None = None) -> list[Started]:
    """Submit each part (default: all) that has no active job; the stream through ``spark_jobs.control.submit``."""
    from spark_jobs import control as stream_control

    jobs = job_client(settings)
    current = part_jobs(jobs)
    result = []
    for part in PARTS:
        if names is not None and part.name not in names:
            continue
        running = active(current[part.name])
        if running is not None:
            result.append(Started(part.name, running.submission_id or running.job_id or "?", False))
            continue
        if part.name == "stream":
            submission_id, submitted = stream_control.submit(settings, config_file)
            result.append(Started(part.name, submission_id, submitted))
            continue
        submission_id = f"ray-app-{part.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        jobs.submit_job(
            entrypoint=part.command,
            submission_id=submission_id,
            runtime_env={"env_vars": {**job_environment(settings, config_file), **stop_grace(settings)}},
            metadata={"ray_app": part.name},
        )
        result.append(Started(part.name, submission_id, True))
    return result


def stop_parts(settings: Settings, names: list[str] | None = None, timeout_s: float = 90) -> list[str]:
    """Stop the active jobs of each part (default: all), in ``STOP_ORDER``, each waited on; the ids stopped."""
    jobs = job_client(settings)
    current = part_jobs(jobs)
    stopped = []
    for name in STOP_ORDER:
        if names is not None and name not in names:
            continue
        for job in current[name]:
            if job.status not in ACTIVE or not job.submission_id:
                continue
            jobs.stop_job(job.submission_id)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and jobs.get_job_status(job.submission_id) in ACTIVE:
                time.sleep(0.5)
            stopped.append(job.submission_id)
    return stopped


def job_states(settings: Settings) -> dict[str, JobDetails | None]:
    """Per part, its active job, else its newest one (None: never submitted)."""
    current = part_jobs(job_client(settings))
    return {name: active(listed) or (listed[0] if listed else None) for name, listed in current.items()}


def is_running(job: JobDetails | None) -> bool:
    return job is not None and job.status == JobStatus.RUNNING
