"""Benchmark: the API pipeline's own cost per request, in process (a direct WSGI call loop,
no sockets, no gunicorn), beside a bare Flask hello called the same way.

    .venv/bin/python bench/api_inprocess.py [--requests 2000] [--only agents_list]
                                            [--profile cprofile|pyinstrument [--all-frames]]
                                            [--postgres]

The same seeded tenant and requests as ``bench/api_pipeline.py`` (an end customer's access
token and API key, 25 agents): `/me` twice, a page of 20 agents, one agent, one PATCH. Each
request is timed best-of-five batches on one core, so the figure moves far less with the
machine's load than a wrk run does: compare two commits with this, back to back, and read
the wrk bench for the served figure. ``--profile`` prints the top of a profile of one
request kind instead. ``--postgres`` uses DATABASE_URL (e.g. from /work/wt/pg-setup.sh);
REDIS_URL when set, else the embedded Redis. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET = "100000000/minute"


def _app(instance: str, postgres: bool):
    from app import create_app
    from app.settings import Settings

    env = dict(os.environ)
    if not postgres:
        env["DATABASE_URL"] = f"sqlite:///{instance}/bench.sqlite3"
        env.pop("MIGRATIONS_DATABASE_URL", None)
    env.update({"ALBEDO_LOG_LEVEL": "WARNING", "ALBEDO_RATE_LIMIT_IP": BUDGET,
                "ALBEDO_RATE_LIMIT_CREDENTIAL": BUDGET, "ALBEDO_RATE_LIMIT_TENANT": BUDGET,
                "ALBEDO_RATE_LIMIT_AUTH": BUDGET, "ALBEDO_FREE_PLAN_AGENTS": "1000"})
    return create_app(Settings.from_env(env, instance_path=instance))


def seed(app, slug: str | None = None) -> dict:
    """A new reseller with one end customer: its access token, API key and 25 agents, the
    first with three versions (bench/api_pipeline.py seeds its servers' database with this
    too)."""
    from flask_migrate import upgrade

    from app.auth.service import create_user
    from app.extensions import db
    from tenants.context import activate
    from tenants.service import create_tenant, info_for

    slug = slug or "bench" + secrets.token_hex(3)
    host = slug + ".localhost"
    with app.app_context():
        upgrade()
        info = info_for(create_tenant(slug, "Bench Agents"))
        db.session.commit()
    with app.app_context(), activate(info):
        create_user("customer@bench.example", "bench-customer-password", verified=True)
        db.session.commit()
    client = app.test_client()
    token = client.post("/api/v1/auth/token", headers={"Host": host}, json={
        "email": "customer@bench.example", "password": "bench-customer-password"}).get_json()
    bearer = {"Host": host, "Authorization": "Bearer " + token["access_token"]}
    agents = []
    for i in range(25):
        answer = client.post("/api/v1/agents", headers=bearer, json={"name": f"Agent {i}"})
        assert answer.status_code == 201, answer.get_data(as_text=True)
        agents.append(answer.get_json()["id"])
    for i in range(3):
        answer = client.post(f"/api/v1/agents/{agents[0]}/versions", headers=bearer,
                             json={"system_prompt": f"Version {i + 1}"})
        assert answer.status_code == 201, answer.get_data(as_text=True)
    key = client.post("/api/v1/api-keys", headers=bearer, json={
        "name": "bench", "scopes": ["agents:read", "agents:write"]})
    assert key.status_code == 201, key.get_data(as_text=True)
    return {"host": host, "token": token["access_token"], "api_key": key.get_json()["key"],
            "agent": agents[0]}


def _environ(host: str, path: str, headers: dict[str, str], method: str = "GET",
             body: bytes = b"") -> dict:
    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": host, "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
               "wsgi.errors": sys.stderr, "wsgi.multithread": False,
               "wsgi.multiprocess": True, "wsgi.run_once": False,
               "HTTP_HOST": host, "CONTENT_LENGTH": str(len(body))}
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _caller(wsgi, host: str, spec: dict):
    body = spec.get("body", "").encode()
    template = _environ(host, spec["path"], spec["headers"], spec.get("method", "GET"), body)
    statuses: list[str] = []

    def start_response(status, _headers, _exc_info=None):
        statuses.append(status)

    def call() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(body)
        statuses.clear()
        chunks = wsgi(environ, start_response)
        b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        if not statuses[0].startswith("2"):
            raise RuntimeError(f"{spec['path']}: {statuses[0]}")

    return call


def requests_of(seeded: dict) -> dict[str, dict]:
    """The benchmarked requests (bench/api_pipeline.py sends the same ones through wrk)."""
    host = seeded["host"]
    jwt = {"Host": host, "Authorization": f"Bearer {seeded['token']}"}
    key = {"Host": host, "Authorization": f"Bearer {seeded['api_key']}"}
    agent = f"/api/v1/agents/{seeded['agent']}"
    return {
        "me_jwt": {"path": "/api/v1/me", "headers": jwt},
        "me_api_key": {"path": "/api/v1/me", "headers": key},
        "agents_list_jwt": {"path": "/api/v1/agents?limit=20", "headers": jwt},
        "agent_get_api_key": {"path": agent, "headers": key},
        # Reads the route answers and the lane remembers (app/api/lane/remembered.py).
        "versions_list_api_key": {"path": f"{agent}/versions", "headers": key},
        "api_keys_list_jwt": {"path": "/api/v1/api-keys", "headers": jwt},
        "licenses_list_jwt": {"path": "/api/v1/licenses", "headers": jwt},
        "agent_patch_jwt": {"path": agent, "headers": jwt, "method": "PATCH",
                            "body": json.dumps({"description": "benchmarked"}), "write": True},
    }


def _time(call, requests: int) -> dict[str, float]:
    """Microseconds per request, wall clock and this process's CPU time: the best of five
    batches each (the least disturbed by the machine's other work)."""
    for _ in range(min(200, requests)):
        call()
    wall = cpu = float("inf")
    batch = max(1, requests // 5)
    for _ in range(5):
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(batch):
            call()
        wall = min(wall, (time.perf_counter() - started) / batch)
        cpu = min(cpu, (time.process_time() - started_cpu) / batch)
    return {"wall_us": round(wall * 1e6, 1), "cpu_us": round(cpu * 1e6, 1)}


def _redis_script_cost(app) -> dict:
    """Redis's own CPU per script call (INFO commandstats), spent on the same cores."""
    from app.redis import get_redis

    with app.app_context():
        stats = get_redis().info("commandstats")
    return {name.removeprefix("cmdstat_"): {"calls": entry["calls"],
                                             "us_per_call": entry["usec_per_call"]}
            for name, entry in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval")}


def _hello():
    from bench.hello_app import app as hello

    return hello.wsgi_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", action="append", help="request names (default: all)")
    parser.add_argument("--profile", choices=("cprofile", "pyinstrument"))
    parser.add_argument("--callgrind-loop", type=int, metavar="N",
                        help="run N requests of the one --only request (or 'hello') inside "
                             "functools.reduce, for valgrind --tool=callgrind "
                             "--collect-atstart=no --toggle-collect=functools_reduce")
    parser.add_argument("--all-frames", action="store_true",
                        help="pyinstrument: show library frames too")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    instance = tempfile.mkdtemp(prefix="albedo-bench-")
    try:
        app = _app(instance, args.postgres)
        seeded = seed(app)
        specs = {name: spec for name, spec in requests_of(seeded).items()
                 if not args.only or name in args.only}
        if args.only == ["hello"]:
            specs = {}
        calls = {name: _caller(app.wsgi_app, seeded["host"], spec) for name, spec in specs.items()}
        if args.profile:
            return _profile(calls, args.requests, args.profile, args.all_frames)
        hello = _caller(_hello(), seeded["host"], {"path": "/api/v1/me", "headers": {}})
        if args.callgrind_loop:
            (call,) = calls.values() if calls else (hello,)
            for _ in range(30):  # warm (caches, pools, SQLAlchemy's compiled statements)
                call()
            # The only code valgrind counts: instructions per request = total / N.
            functools.reduce(lambda _acc, _i: call(), range(args.callgrind_loop), None)
            return 0
        load_start = os.getloadavg()
        hello_before = _time(hello, args.requests)
        figures = {name: _time(call, args.requests) for name, call in calls.items()}
        hello_after = _time(hello, args.requests)
        hello_us = {kind: min(hello_before[kind], hello_after[kind]) for kind in hello_before}
        for figure in figures.values():
            figure["cpu_ratio_to_hello"] = round(hello_us["cpu_us"] / figure["cpu_us"], 3)
        print(json.dumps({"database": "postgresql" if args.postgres else "sqlite",
                          "hello": hello_us, "requests": figures,
                          "redis_scripts": _redis_script_cost(app),
                          "load_average": {"start": load_start, "end": os.getloadavg()}},
                         indent=2))
        return 0
    finally:
        from app import embedded_redis

        embedded_redis.stop(instance, save=False)
        shutil.rmtree(instance, ignore_errors=True)


def _profile(calls: dict, requests: int, kind: str, show_all: bool) -> int:
    for call in calls.values():
        for _ in range(200):
            call()
    if kind == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
        profiler.start()
        for call in calls.values():
            for _ in range(requests):
                call()
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=show_all))
        return 0
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    for call in calls.values():
        for _ in range(requests):
            call()
    profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(40)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
