"""Ray Serve deployments: the HTTP API over forecasts (and, next, recommendations)."""
