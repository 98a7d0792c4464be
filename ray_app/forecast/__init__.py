"""Per-symbol forecasting on Ray: the last 30 days of hourly bars -> the next 7 days of high, low, close and volume.

Stages, each its own module: ``calendar`` (trading hours of stocks and crypto), ``series`` (bars -> regular
series, gaps, skips), ``models`` (statsforecast models, rolling-origin CV, MASE/sMAPE/coverage, the choice
against naive), ``engine`` (one symbol end to end, pure), ``store`` (Elasticsearch), ``runner`` (the Ray
fan-out), ``report`` and ``plot`` (tables and PNGs), ``command`` (`ray-app forecast`).
"""
