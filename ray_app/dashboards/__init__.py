"""Grafana dashboards and provisioning as code (grafana-foundation-sdk)."""
