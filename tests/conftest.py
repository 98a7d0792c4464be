"""What every test shares: the marker by folder (``tests/engines/`` is ``engines``, so `-m "not engines"` runs the
tests that need no engine) and the untrained tiny model the Serve and language-model tests load.

The real local stack is ``tests/engines/conftest.py``'s; helpers only tests use live in ``tests/support/``, helpers
shared with the benchmarks in ``ray_app.testing``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ENGINES = Path(__file__).parent / "engines"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(ENGINES):
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny GPT-2 and its tokenizer in a folder: what from_pretrained(folder) loads in the tests."""
    from ray_app.testing.language_model import build_test_model

    return build_test_model(tmp_path_factory.mktemp("tiny-gpt2"), "tiny")
