"""Benchmark: how many open event streams the production server holds, and what they cost.

    .venv/bin/python bench/stream_capacity.py [--streams 1000] [--seconds 8] [--clients 4]

Starts the app as `make serve` does (gunicorn --config gunicorn.conf.py: gevent workers, one
per core) on a seeded tenant with queued executions (no worker runs them, so their streams
stay open and idle, sending a heartbeat every 15 s). Then, in the same run:

Two identical servers run side by side (the machine is shared and its load drifts, so a
baseline measured a minute earlier is not comparable); measurements alternate between them
in short windows:

1. before: /healthz latency (sequential probes, a new connection each) and the throughput
   of a scoped API GET (GET /api/v1/agents with an API key, `--clients` keep-alive
   connections) on both, which calibrates the twins against each other;
2. opens N streams (GET /api/v1/executions/{id}/stream) on one of them from a separate
   process, each read until its first event, and holds them;
3. the same measurements with the streams open, the workers' memory before and after (RSS,
   so memory per stream), their idle CPU, and how many streams were still open at the end.
   The throughput ratio is (streams server / reference) during, over the same before.

Prints JSON. Targets (issue 14): 1,000 streams held, /healthz p99 <= 50 ms with them, API
throughput with them >= 0.8 of the baseline. Uses SQLite and the embedded Redis in a temporary
instance folder unless DATABASE_URL / REDIS_URL are set (then migrate that database first).
Raises its own open-files limit (and its children's) to the hard limit. Never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "acme.localhost"


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(wanted, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(instance: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ALBEDO_INSTANCE_PATH": instance,
        "ALBEDO_LOG_LEVEL": "WARNING",
        "FLASK_APP": "wsgi",
        # The bench measures the server, not the limiter's refusals.
        "ALBEDO_RATE_LIMIT_IP": "100000000/minute",
        "ALBEDO_RATE_LIMIT_CREDENTIAL": "100000000/minute",
        "ALBEDO_RATE_LIMIT_TENANT": "100000000/minute",
        "ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS": "100000",
        # Executions are created but never run (no worker): a provider need only be named.
        "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "PYTHONPATH": str(ROOT),
    })
    return env


SEED = """
import json
from flask_migrate import upgrade
from app import create_app
from app.agents import executions, service
from app.agents.service import Caller
from app.auth.api_keys import create_key
from app.auth.service import create_user
from app.extensions import db
from tenants.context import activate
from tenants.service import create_tenant, info_for
app = create_app()
with app.app_context():
    upgrade()
    info = info_for(create_tenant("acme", "Acme Agents"))
    db.session.commit()
with app.app_context(), activate(info):
    user = create_user("bench@acme.example", "correct horse battery", role="USER",
                       verified=True)
    db.session.flush()
    _, key = create_key(user, "bench", ["agents:read", "agents:execute"])
    caller = Caller(user.id, "USER")
    agent = service.create_agent(caller, name="Helper", slug="helper",
                                 version={"model": "gpt-4o-mini"})
    db.session.commit()
    ids = [str(executions.start_execution(caller, agent, input=f"hold {i}")[0].id)
           for i in range(%d)]
    print(json.dumps({"key": key, "executions": ids}))
"""


def _seed(env: dict[str, str], count: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SEED % count], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def _serve(port: int, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """gunicorn as `make serve` runs it (its config file, PORT), bound to 127.0.0.1 only."""
    ready = Path(tempfile.mkdtemp(prefix="albedo-bench-ready-"))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
         "--log-level", "warning"],
        env={**env, "PORT": str(port), "BENCH_READY_DIR": str(ready)}, cwd=ROOT,
        stdout=subprocess.DEVNULL)
    workers = int(env.get("WEB_CONCURRENCY") or max(os.cpu_count() or 1, 2))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}")
            if len(list(ready.iterdir())) >= workers:
                return proc, workers
            time.sleep(0.2)
    finally:
        shutil.rmtree(ready, ignore_errors=True)
    proc.kill()
    raise RuntimeError("gunicorn did not start its workers")


def _workers_rss_kb(master: int) -> int:
    total = 0
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _workers_cpu_seconds(master: int) -> float:
    total = 0
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _idle_cpu(master: int, seconds: float = 5.0) -> float:
    """The workers' CPU use (% of one core) while nothing but the held streams happens."""
    before = _workers_cpu_seconds(master)
    time.sleep(seconds)
    return round((_workers_cpu_seconds(master) - before) / seconds * 100, 1)


def _percentiles(latencies: list[float]) -> dict:
    latencies = sorted(latencies)
    return {"probes": len(latencies), "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)], 2),
            "max_ms": round(latencies[-1], 2)}


def _healthz(port: int, probes: int, raw: bool = False):
    """/healthz latencies in ms (a new connection each, 10 ms apart)."""
    latencies = []
    for _ in range(probes):
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/healthz", headers={"Host": "localhost"})
        conn.getresponse().read()
        conn.close()
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    return latencies if raw else _percentiles(latencies)


def _api_client(args: tuple) -> None:
    port, key, until, queue = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = errors = 0
    headers = {"Host": HOST, "Authorization": f"Bearer {key}"}
    while time.perf_counter() < until:
        try:
            conn.request("GET", "/api/v1/agents", headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                done += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    queue.put((done, errors))


def _api_throughput(port: int, key: str, seconds: float, clients: int) -> dict:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    until = time.perf_counter() + seconds
    procs = [multiprocessing.Process(target=_api_client, args=((port, key, until, queue),))
             for _ in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    return {"requests_per_s": round(done / seconds, 1), "errors": sum(r[1] for r in results),
            "clients": clients, "seconds": seconds}


async def _hold(port: int, key: str, ids: list[str], count: int, conn, stop) -> None:
    """Open ``count`` streams, report how many reached their first event, hold them until
    told to stop, then report how many were still open."""
    async def one(index: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2 ** 16)
        path = f"/api/v1/executions/{ids[index % len(ids)]}/stream"
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {key}"
                      "\r\nAccept: text/event-stream\r\n\r\n").encode())
        await writer.drain()
        seen = b""
        while b'"queued"' not in seen:
            chunk = await reader.read(4096)
            if not chunk:
                raise ConnectionError(seen[:200])
            seen += chunk
        if not seen.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(seen[:200])
        return reader, writer

    started = time.perf_counter()
    opened = []
    # In waves, as clients arrive: the accept queue is not a stress test.
    for wave in range(0, count, 100):
        results = await asyncio.gather(*(one(i) for i in range(wave, min(wave + 100, count))),
                                       return_exceptions=True)
        opened += [r for r in results if not isinstance(r, BaseException)]
    failures = count - len(opened)
    conn.send({"opened": len(opened), "failed": failures,
               "open_seconds": round(time.perf_counter() - started, 2)})

    async def drain(reader) -> None:  # read heartbeats until the server ends the stream
        while await reader.read(4096):
            pass

    # One task per stream, blocked in read (no timers: the holder must not compete with the
    # server for the CPU more than reading the heartbeats costs).
    tasks = [asyncio.create_task(drain(r)) for r, _ in opened]
    while not stop.is_set():
        await asyncio.sleep(0.5)
    conn.send({"held_to_the_end": sum(not t.done() for t in tasks)})
    for task in tasks:
        task.cancel()
    for _, writer in opened:
        writer.close()


def _holder(port: int, key: str, ids: list[str], count: int, conn, stop) -> None:
    _raise_nofile(count + 256)
    asyncio.run(_hold(port, key, ids, count, conn, stop))


def _interleaved(ports: dict[str, int], key: str, rounds: int, seconds: float,
                 clients: int, probes: int) -> dict:
    """Each server's /healthz latency and API throughput, measured in alternating short
    windows (A, B, A, B…), so both see the same machine load however it drifts."""
    done = {name: [] for name in ports}
    latencies = {name: [] for name in ports}
    for index in range(rounds):
        order = list(ports) if index % 2 == 0 else list(reversed(ports))
        for name in order:
            done[name].append(_api_throughput(ports[name], key, seconds, clients))
            latencies[name].append(_healthz(ports[name], max(probes // rounds, 1), raw=True))
    answer = {}
    for name in ports:
        merged = sorted(v for batch in latencies[name] for v in batch)
        answer[name] = {
            "api_get_requests_per_s": round(sum(r["requests_per_s"] for r in done[name])
                                            / rounds, 1),
            "api_get_errors": sum(r["errors"] for r in done[name]),
            "healthz": _percentiles(merged)}
    return answer


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measuring window")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--probes", type=int, default=300)
    args = parser.parse_args()
    nofile = _raise_nofile(args.streams * 2 + 512)

    instance = tempfile.mkdtemp(prefix="albedo-bench-streams-")
    env = _environment(instance)
    servers: list[subprocess.Popen] = []
    holder = None
    try:
        seeded = _seed(env, 10)
        key, ids = seeded["key"], seeded["executions"]
        ports = {"streams": _free_port(), "reference": _free_port()}
        procs = {}
        for name, port in ports.items():
            procs[name], workers = _serve(port, env)
            servers.append(procs[name])
            _api_throughput(port, key, 2, args.clients)  # warm-up: connections, caches
        master = procs["streams"].pid
        measure = (key, args.rounds, args.seconds, args.clients, args.probes)
        before = _interleaved(ports, key, *measure[1:])
        rss_before = _workers_rss_kb(master)
        idle_before = _idle_cpu(master)

        parent, child = multiprocessing.Pipe()
        stop = multiprocessing.Event()
        holder = multiprocessing.Process(
            target=_holder, args=(ports["streams"], key, ids, args.streams, child, stop))
        holder.start()
        opened = parent.recv()
        time.sleep(1)  # let the last subscriptions settle before measuring
        rss_with = _workers_rss_kb(master)
        idle_with = _idle_cpu(master)
        during = _interleaved(ports, key, *measure[1:])
        stop.set()
        held = parent.recv()
        holder.join(30)

        def rate(side: dict, name: str) -> float:
            return side[name]["api_get_requests_per_s"]

        # The target: the streams server's throughput against the stream-free figure measured
        # in the same windows (the reference), corrected by how the twins compared before.
        twins = rate(before, "streams") / rate(before, "reference")
        ratio = rate(during, "streams") / rate(during, "reference") / twins
        per_stream = ((rss_with - rss_before) / opened["opened"]) if opened["opened"] else None
        print(json.dumps({
            "benchmark": "stream_capacity",
            "server": {"config": "gunicorn.conf.py", "worker_class": "gevent",
                       "workers": workers, "cpus": os.cpu_count(), "open_files_limit": nofile,
                       "database": "postgresql" if env.get("DATABASE_URL", "").startswith(
                           "postgres") else "sqlite", "redis": "REDIS_URL" if env.get(
                           "REDIS_URL") else "embedded"},
            "method": "two identical servers; the API GET and /healthz measured in "
                      f"{args.rounds} alternating {args.seconds}s windows on each, before and "
                      "while one of them holds the streams",
            "streams": {"requested": args.streams, **opened, **held},
            "before_streams": before,
            "with_streams": during,
            "twins_ratio_before": round(twins, 3),
            "api_throughput_ratio": round(ratio, 3),
            "idle_workers_cpu_percent": {"without_streams": idle_before,
                                         "with_streams": idle_with},
            "memory": {"workers_rss_kb_before": rss_before, "workers_rss_kb_with": rss_with,
                       "kb_per_stream": round(per_stream, 1) if per_stream is not None
                       else None},
            "machine_load_average": os.getloadavg(),
            "targets": {"streams_held": held["held_to_the_end"] >= args.streams,
                        "healthz_p99_le_50ms": during["streams"]["healthz"]["p99_ms"] <= 50,
                        "api_ratio_ge_0_8": ratio >= 0.8},
        }, indent=2))
    finally:
        if holder is not None and holder.is_alive():
            holder.kill()
        for proc in servers:
            _stop(proc)
        subprocess.run([sys.executable, "-c", "import sys; from app import embedded_redis; "
                        "embedded_redis.stop(sys.argv[1], save=False)", instance],
                       cwd=ROOT, env=env, check=False, capture_output=True)
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
