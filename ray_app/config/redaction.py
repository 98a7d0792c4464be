"""Secrets out of every text the platform shows: credentials in URLs masked or removed, log records redacted as
they are made, the names of the settings that hold secrets."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

# every setting that holds a secret, by field name: a config error never echoes their values, whatever their type
SECRET_FIELDS = frozenset({"password", "api_key", "secret_key", "sasl_password", "webhook_url"})
MASK = "**********"
# scheme://user:password@host -> the password; also a lone token as the user part (scheme://token@host)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+._\-]*://)(?P<userinfo>[^/@\s]+)@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: ``http://elastic:pw@host`` -> ``http://elastic:
    **********@host`` (a user name stays, a password or a token does not)."""

    def mask(match: re.Match[str]) -> str:
        user, _, password = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:{MASK}@" if password else f"{match['scheme']}{MASK}@"

    return _URL_CREDENTIALS.sub(mask, text)


def redact_log_records() -> None:
    """Mask the credentials of every URL in every log record this process makes, whichever library logs it (the
    Elasticsearch client, alpaca-py, Ray, ours): the record's message is formatted and redacted as it is made.
    Idempotent; the CLI, the streaming driver and the Serve replicas call it at start."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: logging reports that itself
            return record
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def strip_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it removed: ``http://elastic:pw@host`` -> ``http://host``."""
    return _URL_CREDENTIALS.sub(lambda match: match["scheme"], text)


def _each_string(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (plain data: dicts, lists, scalars) with ``change`` applied to every string in it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _each_string(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_each_string(item, change) for item in value]
    return value


def redacted(value: Any) -> Any:
    """Plain data with the credentials of every URL in it masked (``redact`` on each string)."""
    return _each_string(value, redact)


def without_credentials(value: Any) -> Any:
    """Plain data with the credentials of every URL in it removed (``strip_credentials`` on each string)."""
    return _each_string(value, strip_credentials)
