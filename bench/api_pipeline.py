"""Benchmark: authenticated, tenant-scoped API requests under gunicorn versus a bare Flask
hello, same settings, same run.

    .venv/bin/python bench/api_pipeline.py [--seconds 10] [--connections 16] [--postgres]

Starts the app under gunicorn (2 sync workers) on a freshly seeded reseller with one end
customer (an access token, an API key, 25 agents) and a bare Flask app answering a JSON hello
under the same gunicorn settings, loads each with wrk (`apt-get install wrk`), and prints JSON
per database: requests/s, p50/p99 of each request, and its ratio to the hello measured in
the same run (before and after the app's requests; the ratio uses their mean).

Requests: `GET /api/v1/me` with the access token and with the API key, `GET /api/v1/agents`
(a page of 20), `GET /api/v1/agents/<id>` and one write, `PATCH /api/v1/agents/<id>`.

Targets (issue 15), reads: ratio >= 0.5 and p99 <= 20 ms at 16 connections on SQLite; the
PostgreSQL figure is stated beside it; writes have no target. SQLite always runs (in a
temporary instance folder); `--postgres` also runs on DATABASE_URL / MIGRATIONS_DATABASE_URL
(e.g. from /work/wt/pg-setup.sh; a new tenant each run, so a used database is fine). Both use
REDIS_URL when set, else the embedded Redis. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_inprocess import requests_of  # noqa: E402  (after the path)
from bench.license_validation import (  # noqa: E402
    _free_port,
    _gunicorn,
    _stop_embedded_redis,
)

BUDGET = "100000000/minute"  # the bench measures the pipeline, not the limiter's refusals


def _environment(instance: str, postgres: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not postgres:
        env.pop("DATABASE_URL", None)
        env.pop("MIGRATIONS_DATABASE_URL", None)
    env.update({
        "ALBEDO_INSTANCE_PATH": instance,
        "ALBEDO_LOG_LEVEL": "WARNING",
        "ALBEDO_RATE_LIMIT_IP": BUDGET, "ALBEDO_RATE_LIMIT_CREDENTIAL": BUDGET,
        "ALBEDO_RATE_LIMIT_TENANT": BUDGET, "ALBEDO_RATE_LIMIT_AUTH": BUDGET,
        "ALBEDO_FREE_PLAN_AGENTS": "1000",
        "PYTHONPATH": str(ROOT),
    })
    return env


SEED = """
import json, sys
from app import create_app
from bench.api_inprocess import seed
print(json.dumps(seed(create_app(), sys.argv[1])))
"""


def _seed(env: dict[str, str]) -> dict:
    slug = "bench" + secrets.token_hex(3)
    out = subprocess.run([sys.executable, "-c", SEED, slug], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def _wrk(port: int, path: str, seconds: float, connections: int, headers: dict[str, str],
         method: str = "GET", body: str | None = None) -> dict:
    lines = [f'wrk.method = "{method}"']
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    lines.append(
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('JSON {\"requests\": %d, \"errors\": %d, \"non2xx\": %d, "
        "\"p50_us\": %d, \"p99_us\": %d, \"duration_us\": %d}\\n', summary.requests, "
        "summary.errors.connect + summary.errors.read + summary.errors.write + "
        "summary.errors.timeout, summary.errors.status, latency:percentile(50), "
        "latency:percentile(99), summary.duration))\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines))
    try:
        out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{int(seconds)}s",
                              "-s", script.name, f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    data = json.loads(next(line for line in out.splitlines() if line.startswith("JSON "))[5:])
    return {"rps": round(data["requests"] / (data["duration_us"] / 1e6), 1),
            "p50_ms": round(data["p50_us"] / 1000, 2), "p99_ms": round(data["p99_us"] / 1000, 2),
            "requests": data["requests"], "errors": data["errors"], "non_2xx": data["non2xx"]}


def run(postgres: bool, seconds: float, connections: int) -> dict:
    instance = tempfile.mkdtemp(prefix="albedo-bench-")
    env = _environment(instance, postgres)
    servers: list[subprocess.Popen] = []
    try:
        seed = _seed(env)
        app_port, hello_port = _free_port(), _free_port()
        servers.append(_gunicorn("wsgi:app", app_port, env))
        servers.append(_gunicorn("bench.hello_app:app", hello_port, env))
        requests = requests_of(seed)
        hello_headers = {"Host": seed["host"]}
        load_start = os.getloadavg()
        _wrk(hello_port, "/api/v1/me", 2, connections, hello_headers)  # warm-up
        for spec in requests.values():
            _wrk(app_port, spec["path"], 2, connections, spec["headers"],
                 spec.get("method", "GET"), spec.get("body"))
        hello_before = _wrk(hello_port, "/api/v1/me", seconds, connections, hello_headers)
        figures = {name: _wrk(app_port, spec["path"], seconds, connections, spec["headers"],
                              spec.get("method", "GET"), spec.get("body"))
                   for name, spec in requests.items()}
        hello_after = _wrk(hello_port, "/api/v1/me", seconds, connections, hello_headers)
        baseline = (hello_before["rps"] + hello_after["rps"]) / 2
        for name, figure in figures.items():
            figure["ratio"] = round(figure["rps"] / baseline, 3) if baseline else None
            if not requests[name].get("write"):
                figure["meets"] = bool(figure["ratio"] and figure["ratio"] >= 0.5
                                       and figure["p99_ms"] <= 20)
        return {"database": "postgresql" if postgres else "sqlite",
                "hello_before": hello_before, "hello_after": hello_after,
                "requests": figures, "load_average": {"start": load_start,
                                                      "end": os.getloadavg()}}
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        _stop_embedded_redis(instance)
        shutil.rmtree(instance, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--postgres", action="store_true",
                        help="also run on DATABASE_URL (PostgreSQL)")
    parser.add_argument("--only-postgres", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if (args.postgres or args.only_postgres) and not os.environ.get("DATABASE_URL"):
        print("--postgres needs DATABASE_URL and MIGRATIONS_DATABASE_URL", file=sys.stderr)
        return 2
    runs = [] if args.only_postgres else [run(False, args.seconds, args.connections)]
    if args.postgres or args.only_postgres:
        runs.append(run(True, args.seconds, args.connections))
    print(json.dumps({
        "load_generator": "wrk -t2", "connections": args.connections, "seconds": args.seconds,
        "gunicorn": {"workers": 2, "worker_class": "sync"},
        "redis": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded",
        "targets": {"reads": {"ratio_min": 0.5, "p99_ms_max": 20, "database": "sqlite"}},
        "runs": runs,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
