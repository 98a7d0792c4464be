"""The Serve app's version changes with every setting, secret and line of code that shapes it, and never shows a
secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from ray_app.config import Settings, load_settings
from serve_deployments import app_version as module
from serve_deployments.app_version import app_version


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    defaults = load_settings()
    serve = defaults.serve.model_copy(update={"api_key": SecretStr("k" * 40)})
    return defaults.model_copy(update={"state_dir": tmp_path, "serve": serve})


def test_same_inputs_same_version_and_no_secret_in_it(settings) -> None:
    version = app_version(settings)
    assert version == app_version(settings.model_copy(deep=True))
    assert len(version) == 16 and "k" * 4 not in version


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.serve.model_copy(update={"cache_ttl_s": s.serve.cache_ttl_s + 1}),
        lambda s: s.serve.model_copy(update={"api_key": SecretStr("another key of forty characters.........")}),
    ],
)
def test_a_changed_setting_or_key_changes_the_version(settings, change) -> None:
    assert app_version(settings.model_copy(update={"serve": change(settings)})) != app_version(settings)


def test_a_changed_secret_elsewhere_changes_the_version(settings) -> None:
    elasticsearch = settings.elasticsearch.model_copy(update={"password": SecretStr("new password")})
    assert app_version(settings.model_copy(update={"elasticsearch": elasticsearch})) != app_version(settings)


def test_changed_code_changes_the_version(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    before = app_version(settings)
    monkeypatch.setattr(module, "_code_digest", lambda: "another tree")
    assert app_version(settings) != before
