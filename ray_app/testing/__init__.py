"""Test doubles and helpers shared by the tests and the benchmarks (bytewax's ``testing.py`` is the model): what a
test of ours, or of a user's own stage, needs to run the real engines on one machine without the internet.

- ``fake_alpaca``: a local Alpaca speaking its real wire protocol (websocket streams and the REST API)
- ``alpaca_rules``: Alpaca's minute-bar rules and trade identity in its own words (references, not our code)
- ``bars``: known-answer hourly bars (synthetic random walks and daily cycles) and real price data a package ships
- ``language_model``: the untrained GPT-2 builder (``from_pretrained`` loads it like any model folder)
- ``settings``: typed, checked settings overrides as RAY_APP_* variables; settings of a test module's own
- ``stack``: free ports, a stack of one's own, the CLI in a subprocess, process checks
- ``cluster``: a second Ray node; ``serve_load``: load on the Serve app and its replica counts

Helpers only the tests use are in ``tests/support/``. No production module imports this package
(tests/unit/test_layers.py).
"""
