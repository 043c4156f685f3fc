"""gunicorn config for the benchmarks: each worker, once it has loaded the app, leaves a file
in $BENCH_READY_DIR, so a benchmark starts measuring only when every worker answers."""

import os
from pathlib import Path


def post_worker_init(worker) -> None:
    folder = os.environ.get("BENCH_READY_DIR")
    if folder:
        Path(folder, str(worker.pid)).touch()
