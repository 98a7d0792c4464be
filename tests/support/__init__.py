"""Helpers only the tests use (one harness per module); what the benchmarks share with the tests is in
``ray_app.testing``."""
