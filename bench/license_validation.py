"""Benchmark: license validation under gunicorn versus a bare Flask hello, same settings.

    .venv/bin/python bench/license_validation.py [--seconds 10] [--connections 16]

Starts the app under gunicorn (2 sync workers) with a seeded reseller and license, and a bare
Flask app answering a JSON hello under the same gunicorn settings; loads both in the same run
(wrk when installed, else a Python load generator using as many processes as connections)
and prints JSON: requests/s of each, their ratio, p50/p99 latency, and the offline
verification time per key with clients/python/license_verifier.py.

Targets (issue 4): ratio >= 0.6 and p99 <= 20 ms at 16 connections on a 2-core machine;
offline verification <= 250 µs per key. Uses SQLite and the embedded Redis in a temporary
instance folder unless DATABASE_URL / REDIS_URL are set. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/licenses/validate"
HOST = "acme.localhost"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(instance: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ALBEDO_INSTANCE_PATH": instance,
        "ALBEDO_LOG_LEVEL": "WARNING",
        # The bench measures the endpoint, not the limiter's refusals.
        "ALBEDO_RATE_LIMIT_LICENSE_KEY": "100000000/minute",
        "ALBEDO_RATE_LIMIT_LICENSE_IP": "100000000/minute",
        "ALBEDO_RATE_LIMIT_IP": "100000000/minute",
        "ALBEDO_RATE_LIMIT_TENANT": "100000000/minute",
        "PYTHONPATH": str(ROOT),
    })
    return env


def _seed(env: dict[str, str]) -> tuple[str, dict]:
    """Migrate, create reseller acme with one license; returns (key, jwks)."""
    code = """
import json
from flask_migrate import upgrade
from app import create_app
from app.extensions import db
from app.licensing import service, signing
from tenants.context import activate
from tenants.service import create_tenant, info_for
app = create_app()
with app.app_context():
    upgrade()
    info = info_for(create_tenant("acme", "Acme Agents"))
    db.session.commit()
with app.app_context(), activate(info):
    product = service.create_product("Pro", "pro")
    policy = service.create_policy(product, service.PolicyInput(name="Yearly", duration_days=365))
    key = service.issue_license(policy).key
    db.session.commit()
    print(json.dumps({"key": key, "jwks": signing.jwks()}))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    data = json.loads(out)
    return data["key"], data["jwks"]


def _gunicorn(app_spec: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    """Start 2 sync workers and return once both have loaded the app (which takes seconds on
    a busy machine, long after gunicorn starts listening)."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    ready = Path(tempfile.mkdtemp(prefix="albedo-bench-ready-"))
    proc = subprocess.Popen([gunicorn, "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
                             "-c", str(ROOT / "bench" / "gunicorn_ready.py"),
                             "--log-level", "warning", app_spec],
                            env={**env, "BENCH_READY_DIR": str(ready)}, cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn for {app_spec} exited with {proc.returncode}")
            if len(list(ready.iterdir())) >= 2:
                return proc
            time.sleep(0.2)
    finally:
        shutil.rmtree(ready, ignore_errors=True)
    proc.kill()
    raise RuntimeError(f"gunicorn for {app_spec} did not start its workers")


def _load_worker(args: tuple[int, bytes, float, multiprocessing.Queue]) -> None:
    port, body, until, queue = args
    latencies: list[float] = []
    errors = 0
    headers = {"Host": HOST, "Content-Type": "application/json"}
    while time.perf_counter() < until:
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", PATH, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                errors += 1
                continue
        except OSError:
            errors += 1
            continue
        latencies.append(time.perf_counter() - start)
    queue.put((latencies, errors))


def _python_load(port: int, body: bytes, seconds: float, connections: int) -> dict:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    until = time.perf_counter() + seconds
    procs = [multiprocessing.Process(target=_load_worker, args=((port, body, until, queue),))
             for _ in range(connections)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    return _summary(latencies, errors, elapsed)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    if not latencies:
        return {"requests": 0, "errors": errors, "rps": 0.0, "p50_ms": None, "p99_ms": None}
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {"requests": len(latencies), "errors": errors,
            "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(p99 * 1000, 2)}


def _wrk_load(port: int, body: bytes, seconds: float, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n'
                     f'wrk.headers["Content-Type"] = "application/json"\n'
                     f'wrk.headers["Host"] = "{HOST}"\n'
                     "done = function(summary, latency, requests)\n"
                     "  io.write(string.format('JSON {\"requests\": %d, \"errors\": %d, "
                     "\"p50_us\": %d, \"p99_us\": %d, \"duration_us\": %d}\\n', "
                     "summary.requests, summary.errors.status + summary.errors.connect + "
                     "summary.errors.read + summary.errors.write + summary.errors.timeout, "
                     "latency:percentile(50), latency:percentile(99), summary.duration))\nend\n")
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{int(seconds)}s",
                          "-s", script.name, f"http://127.0.0.1:{port}{PATH}"],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    data = json.loads(next(line for line in out.splitlines() if line.startswith("JSON "))[5:])
    return {"requests": data["requests"], "errors": data["errors"],
            "rps": round(data["requests"] / (data["duration_us"] / 1e6), 1),
            "p50_ms": round(data["p50_us"] / 1000, 2), "p99_ms": round(data["p99_us"] / 1000, 2)}


def _raw_ed25519_verify_us(rounds: int = 2000) -> float:
    """The bare signature check on this machine now: the floor under offline verification."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    public, message = private.public_key(), b"x" * 44
    signature = private.sign(message)
    start = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, message)
    return (time.perf_counter() - start) / rounds * 1e6


def _offline_verification(key: str, jwks: dict, rounds: int = 2000) -> float:
    spec = importlib.util.spec_from_file_location(
        "license_verifier", ROOT / "clients" / "python" / "license_verifier.py")
    verifier = importlib.util.module_from_spec(spec)
    sys.modules["license_verifier"] = verifier  # dataclasses look their module up there
    spec.loader.exec_module(verifier)
    verifier.verify_key(key, jwks)  # warm up
    start = time.perf_counter()
    for _ in range(rounds):
        verifier.verify_key(key, jwks)
    return (time.perf_counter() - start) / rounds * 1e6


def _stop_embedded_redis(instance: str) -> None:
    """Stop the throw-away Redis the seeding started, and wait for it: Redis refuses to exit
    while its final save fails, which it would if the folder vanished first."""
    pidfile = Path(instance) / "redis.pid"
    if os.environ.get("REDIS_URL") or not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip())
    sys.path.insert(0, str(ROOT))
    from app import embedded_redis

    embedded_redis.stop(instance, save=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    instance = tempfile.mkdtemp(prefix="albedo-bench-")
    env = _environment(instance)
    servers: list[subprocess.Popen] = []
    try:
        key, jwks = _seed(env)
        body = json.dumps({"key": key, "nonce": "bench"}).encode()
        app_port, hello_port = _free_port(), _free_port()
        servers.append(_gunicorn("wsgi:app", app_port, env))
        servers.append(_gunicorn("bench.hello_app:app", hello_port, env))
        use_wrk = shutil.which("wrk") is not None
        load = _wrk_load if use_wrk else _python_load
        load(app_port, body, 3, args.connections)  # warm-up: caches, pools, both workers
        load(hello_port, body, 3, args.connections)
        validate = load(app_port, body, args.seconds, args.connections)
        hello = load(hello_port, body, args.seconds, args.connections)
        offline_us = _offline_verification(key, jwks)
        ratio = round(validate["rps"] / hello["rps"], 3) if hello["rps"] else None
        print(json.dumps({
            "load_generator": "wrk" if use_wrk else "python (one process per connection)",
            "connections": args.connections, "seconds": args.seconds,
            "gunicorn": {"workers": 2, "worker_class": "sync"},
            "database": "postgresql" if os.environ.get("DATABASE_URL") else "sqlite",
            "validate": validate, "hello": hello, "ratio": ratio,
            "offline_verify_us_per_key": round(offline_us, 1),
            "raw_ed25519_verify_us": round(_raw_ed25519_verify_us(), 1),
            "load_average": os.getloadavg(),
            "targets": {"ratio_min": 0.6, "p99_ms_max": 20, "offline_verify_us_max": 250},
            "meets": {"ratio": ratio is not None and ratio >= 0.6,
                      "p99": validate["p99_ms"] is not None and validate["p99_ms"] <= 20,
                      "offline": offline_us <= 250},
        }, indent=2))
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
