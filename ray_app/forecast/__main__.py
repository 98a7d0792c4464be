"""`python -m ray_app.forecast [OPTIONS]`: the same as `ray-app forecast [OPTIONS]`, e.g. as a Ray job:

ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m ray_app.forecast --every 60
"""

import sys

from ray_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["forecast", *sys.argv[1:]], prog_name="python -m ray_app.forecast"))
