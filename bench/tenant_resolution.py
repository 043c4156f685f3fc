"""Per-request overhead of Albedo's request pipeline (request id, Host → tenant through the
cache, rate limits, the envelope) over a bare Flask app answering the same JSON.

In process through WSGI (no sockets), so the figure is the framework work per request.
Prints JSON: requests/s of each, the ratio, and p50/p99 latency in microseconds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))


def measure(client, path: str, headers: dict[str, str]) -> dict[str, float]:
    for _ in range(200):  # warm caches and pools
        client.get(path, headers=headers)
    samples = []
    started = time.perf_counter()
    for _ in range(REQUESTS):
        t0 = time.perf_counter_ns()
        response = client.get(path, headers=headers)
        samples.append(time.perf_counter_ns() - t0)
        assert response.status_code == 200, response.status_code
    elapsed = time.perf_counter() - started
    samples.sort()
    return {"requests_per_s": round(REQUESTS / elapsed, 1),
            "p50_us": round(statistics.median(samples) / 1000, 1),
            "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 1)}


def main() -> None:
    from flask import Flask

    from app import create_app
    from app.settings import Settings

    instance = tempfile.mkdtemp(prefix="albedo-bench-")
    env = {**os.environ, "ALBEDO_ENV": "testing", "ALBEDO_LOG_LEVEL": "WARNING",
           "ALBEDO_RATE_LIMIT_IP": "1000000/minute", "ALBEDO_RATE_LIMIT_TENANT":
           "1000000/minute"}
    env.setdefault("DATABASE_URL", f"sqlite:///{instance}/bench.sqlite3")
    settings = Settings.from_env(env, instance_path=instance)
    app = create_app(settings)
    with app.app_context():
        from flask_migrate import upgrade

        from app.cli import seed_demo

        upgrade()
        seed_demo()

    bare = Flask("bare")

    @bare.get("/api/v1/tenant")
    def hello():
        return {"slug": "acme", "display_name": "Acme Agents"}

    albedo = measure(app.test_client(), "/api/v1/tenant", {"Host": "acme.localhost"})
    baseline = measure(bare.test_client(), "/api/v1/tenant", {"Host": "acme.localhost"})
    print(json.dumps({
        "benchmark": "tenant_resolution", "requests": REQUESTS,
        "albedo": albedo, "bare_flask": baseline,
        "ratio": round(albedo["requests_per_s"] / baseline["requests_per_s"], 3),
        "overhead_p50_us": round(albedo["p50_us"] - baseline["p50_us"], 1),
    }, indent=2))
    if settings.uses_embedded_redis:
        from app import embedded_redis

        embedded_redis.stop(instance, save=False)


if __name__ == "__main__":
    main()
