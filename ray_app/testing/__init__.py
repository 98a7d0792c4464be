"""Test doubles and helpers for the platform, in one place (bytewax's ``testing.py`` is the model): what a test of
ours, or of a user's own stage, needs to run the real engines on one machine without the internet.

- ``fake_alpaca``: a local Alpaca speaking its real wire protocol (websocket streams and the REST API)
- ``bars``: known-answer hourly bars (synthetic random walks and daily cycles) and real price data a package ships
- ``language_model``: the untrained GPT-2 builder (``from_pretrained`` loads it like any model folder)
- ``poison``: every kind of record the stream must survive
- ``settings``: RAY_APP_* variables from typed, checked settings overrides
- ``stack``: free ports, a stack of one's own, the CLI in a subprocess, process checks
- ``kafka``: topics of one's own, reading a topic back, Java's key partitioner, a private broker (``own_kafka``)
- ``jvm``, ``es_faults``, ``tcp_proxy``: the streaming job's Java code in a plain JVM, a fault-injecting
  Elasticsearch proxy, a TCP proxy that can drop connections

No production module imports this package (tests/test_layers_units.py).
"""
