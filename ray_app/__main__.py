"""`python -m ray_app` is the `ray-app` command."""

import sys

from ray_app.cli import main

sys.exit(main(prog_name="python -m ray_app"))
