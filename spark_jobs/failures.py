"""Why the stream failed, in plain words: a Java exception's cause under Spark's and Py4J's wrappers, a Python
exception, a query that ended; one line, credentials masked (the status, the log and `ray-app stream status` show
it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray_app.config.redaction import redact

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery


def one_line(text: str, limit: int = 500) -> str:
    return redact(" ".join(text.split()))[:limit]


def java_failure_text(throwable: Any) -> str:
    """A Java exception in plain words: our sink's failure if it is in the cause chain, else the deepest cause
    (the Kafka or I/O error under Spark's wrappers)."""
    chain: list[Any] = []
    while throwable is not None and len(chain) < 20:
        chain.append(throwable)
        throwable = throwable.getCause()
    for item in chain:
        if item.getClass().getName().endswith(".BulkWriteFailed"):
            return one_line(f"Elasticsearch: {item.getMessage()}")
    deepest = chain[-1]
    message = deepest.getMessage() or ""
    if "An exception was raised by the Python Proxy" in message:
        message = message.rsplit("\n", 2)[-2] if message.count("\n") >= 2 else message
    return one_line(f"{deepest.getClass().getSimpleName()}: {message}")


def failure_text(exc: BaseException) -> str:
    """An exception from PySpark, Py4J or Python in plain words, without the wrappers' boilerplate."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return java_failure_text(java)
        except Exception:  # the JVM is gone: fall back to the text
            pass
    return one_line(f"{type(exc).__name__}: {exc}")


def query_failure(query: StreamingQuery) -> str | None:
    """Why a query that is no longer active ended, or None when it was stopped."""
    try:
        failure = query._jsq.exception()
        if not failure.isDefined():
            return None
        return java_failure_text(failure.get())
    except Exception:
        error = query.exception()
        return one_line(str(error)) if error else None
