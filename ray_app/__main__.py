"""`python -m ray_app` is the `ray-app` command."""

from ray_app.cli import main

main()
