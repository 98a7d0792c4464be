"""Ray-native real-time trading-data platform: config, schemas, ingest, forecasting, the local stack, the CLI."""

__version__ = "0.1.0"
