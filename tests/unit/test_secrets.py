"""Secrets never shown: credentials inside URLs are masked in every output, and config errors never echo a secret.

The password used below is one no code knows; every check greps the whole output for it, not for a mask.
"""

from __future__ import annotations

import asyncio
import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from typer.testing import CliRunner

from ray_app.config import SECRET_FIELDS, ConfigError, Settings, load_settings
from ray_app.config.redaction import redact
from ray_app.testing.stack import free_ports

PASSWORD = "Zq7-unguessable.pw"

URLS = [
    f"http://elastic:{PASSWORD}@127.0.0.1:9200",
    f"https://elastic:{PASSWORD}@es.example.com/some/path?x=1",
    f"https://{PASSWORD}@es.example.com",  # a token as the user part
    f"HTTP://user:{PASSWORD}@[::1]:9200/",
    f"sasl_ssl://svc:{PASSWORD}@broker:9093",
]


@pytest.mark.parametrize("url", URLS)
def test_redact_masks_the_password_of_any_url_in_any_text(url: str) -> None:
    text = f"error: cannot reach {url} (also tried {url}); see the log"
    masked = redact(text)
    assert PASSWORD not in masked
    assert masked.count("**********") == 2
    assert "127.0.0.1" in masked or "example.com" in masked or "::1" in masked or "broker" in masked
    assert redact("http://127.0.0.1:9200 and plain text: a@b") == "http://127.0.0.1:9200 and plain text: a@b"


def _secret_fields(model: type[BaseModel]) -> set[str]:
    found = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation) or (annotation,)
        if SecretStr in args:
            found.add(name)
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found |= _secret_fields(arg)
    return found


def test_every_secret_setting_is_known_to_the_error_formatter() -> None:
    assert _secret_fields(Settings) and _secret_fields(Settings) <= SECRET_FIELDS


def _cli(*args: str, env: dict[str, str]) -> str:
    from ray_app.cli import app

    result = CliRunner().invoke(app, list(args), env=env)
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_config_show_masks_a_password_inside_the_elasticsearch_url() -> None:
    output = _cli("config", "show", env={"RAY_APP_ELASTICSEARCH__URL": URLS[0]})
    assert "127.0.0.1:9200" in output and PASSWORD not in output


@pytest.mark.parametrize("value", ["12345678", "[1, 2]", "{a: 1}", "true"], ids=["int", "list", "map", "bool"])
def test_a_secret_of_the_wrong_type_is_never_echoed_in_a_config_error(tmp_path: Path, value: str) -> None:
    secret = value if value != "12345678" else "987654321"
    config = tmp_path / "mine.yaml"
    config.write_text(f"elasticsearch:\n  password: {secret}\nalpaca:\n  secret_key: {secret}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "elasticsearch.password" in message and "alpaca.secret_key" in message
    for token in ("987654321", "[1, 2]", "'a': 1", "True"):
        assert token not in message, message


def test_a_bad_url_setting_is_echoed_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_APP_SERVE__HTTP_PORT", f"http://u:{PASSWORD}@host")  # not a port: the error quotes it
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "serve.http_port" in str(caught.value) and PASSWORD not in str(caught.value)


def test_unreachable_elasticsearch_errors_never_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    (dead,) = free_ports(1)
    url = f"http://elastic:{PASSWORD}@127.0.0.1:{dead}"
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__URL", url)
    monkeypatch.setenv("RAY_APP_ELASTICSEARCH__REQUEST_TIMEOUT_S", "2")
    # the CLI's error exit
    output = _cli("forecast", "show", env={"RAY_APP_ELASTICSEARCH__URL": url})
    assert "error" in output.lower() and f"127.0.0.1:{dead}" in output and PASSWORD not in output
    # the Serve app's 503 body
    from serve_deployments.app import _unavailable
    from serve_deployments.forecast_reader import BackendUnavailable, ForecastReader

    with pytest.raises(BackendUnavailable) as caught:
        ForecastReader(load_settings()).symbols()
    assert PASSWORD not in str(caught.value)
    response = asyncio.run(_unavailable(None, BackendUnavailable(f"Elasticsearch at {url} is unreachable")))
    body = json.loads(response.body)
    assert response.status_code == 503 and PASSWORD not in body["detail"] and "unreachable" in body["detail"]


def test_a_stream_failure_text_never_shows_the_password() -> None:
    from spark_jobs.failures import failure_text

    text = failure_text(ConnectionError(f"Elasticsearch at http://elastic:{PASSWORD}@10.0.0.5:9200 refused"))
    assert PASSWORD not in text and "10.0.0.5:9200" in text


def test_the_serve_api_key_is_made_once_private_to_its_owner_and_never_shown(tmp_path, monkeypatch) -> None:
    import stat

    from ray_app.config import load_settings
    from serve_deployments.auth import api_key, is_loopback, key_file

    monkeypatch.setenv("RAY_APP_STATE_DIR", str(tmp_path))
    settings = load_settings()
    made = api_key(settings)
    assert len(made) >= 40 and api_key(settings) == made  # made once, then read back
    assert stat.S_IMODE(key_file(settings).stat().st_mode) == 0o600
    monkeypatch.setenv("RAY_APP_SERVE__API_KEY", "chosen-by-the-operator")
    chosen = load_settings()
    assert api_key(chosen) == "chosen-by-the-operator"
    assert "chosen-by-the-operator" not in json.dumps(chosen.masked()) + repr(chosen)
    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "10.0.0.5", "example.com")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_no_log_record_shows_a_password_whichever_library_writes_it() -> None:
    """Records made the usual ways (%-args, a pre-formatted message, an exception's text, a library's logger,
    Python's last-resort handler) in a process that loaded the CLI: the password is masked in all of them."""
    import subprocess
    import sys

    script = """
import logging
import ray_app.cli.common  # what every ray-app command loads
url = "http://elastic:hunter2@127.0.0.1:9200/trades"
logging.getLogger("elastic_transport.transport").warning("GET %s [status:N/A]", url)
logging.getLogger("alpaca").warning(f"preformatted {url}")
try:
    raise ConnectionError(f"cannot reach {url}")
except ConnectionError as exc:
    logging.getLogger("ray_app").error("failed: %s", exc)
logging.basicConfig(format="%(name)s %(message)s")
logging.getLogger("urllib3").warning("again %s", url)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert result.stderr.count("elastic:**********@127.0.0.1:9200") == 4, result.stderr
