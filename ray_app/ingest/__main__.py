"""`python -m ray_app.ingest ...` is `ray-app ingest ...`, for `ray job submit --working-dir . -- python -m ...`."""

import sys

from ray_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]], prog_name="python -m ray_app.ingest"))
