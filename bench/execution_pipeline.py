"""Benchmark: the execution pipeline against the stand-in provider at a fixed latency.

Measures, and prints as JSON:

* ``provider``: the bare provider call (ChatOpenAI streaming, as the engine makes it) —
  the baseline, measured in the same run;
* ``enqueue_to_start_ms``: from the API's insert to the worker claiming the execution (p50/p95);
* ``overhead_ms``: end-to-end time (insert → outcome written) minus the provider baseline
  (p50/p95). Target: p50 ≤ 50 ms;
* ``throughput``: executions per second with W forking RQ workers against the ideal
  W / latency. Target: ≥ 85 % of ideal.

Runs on a throw-away SQLite database and embedded Redis in a temporary folder unless
DATABASE_URL/REDIS_URL are set. Usage: ``python bench/execution_pipeline.py [--latency 0.2]
[--samples 30] [--workers 4] [--jobs 40]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": _pct(values, 0.5), "p95": _pct(values, 0.95), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency (s)")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()

    from tests.fakes.openai_server import start_fake_openai

    fake = start_fake_openai(latency=args.latency)
    instance = tempfile.mkdtemp(prefix="albedo-bench-")
    os.environ.update({"ALBEDO_INSTANCE_PATH": instance, "ALBEDO_ENV": "development",
                       "ALBEDO_LOG_LEVEL": "WARNING", "OPENAI_BASE_URL": fake.base_url,
                       "OPENAI_API_KEY": "sk-bench", "ALBEDO_QUEUE_PREFIX": "bench-",
                       "ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS": "1000000"})
    from flask_migrate import upgrade

    from app import create_app

    app = create_app()
    with app.app_context():
        upgrade()
        tenant_info, user_id, agent = _seed()
        provider_ms = _provider_baseline(fake.base_url, args.samples)
        workers = _start_workers(1)
        try:
            waits, overheads = _sequential(app, tenant_info, user_id, agent, args.samples,
                                           statistics.median(provider_ms))
        finally:
            _stop(workers)
        workers = _start_workers(args.workers)
        try:
            throughput = _throughput(tenant_info, user_id, agent, args.jobs, args.workers)
        finally:
            _stop(workers)
    fake.close()
    if not os.environ.get("REDIS_URL"):
        from app import embedded_redis

        embedded_redis.stop(instance, save=False)  # the throw-away Redis this run started
    ideal = args.workers / args.latency
    print(json.dumps({
        "provider_latency_s": args.latency,
        "provider_ms": _summary(provider_ms),
        "enqueue_to_start_ms": _summary(waits),
        "overhead_ms": _summary(overheads),
        "overhead_target_p50_ms": 50,
        "throughput": {"workers": args.workers, "jobs": args.jobs,
                       "per_second": round(throughput, 2), "ideal_per_second": round(ideal, 2),
                       "ratio_of_ideal": round(throughput / ideal, 3), "target_ratio": 0.85},
    }, indent=2))


def _seed():
    from app.agents.service import Caller, create_agent
    from app.auth.service import create_user
    from app.extensions import db
    from tenants.context import activate
    from tenants.service import Branding, create_tenant, info_for

    tenant = create_tenant("benchco", "Bench Co", "reseller", Branding())
    db.session.commit()
    info = info_for(tenant)
    with activate(info):
        user = create_user("bench@example.com", "correct horse battery", verified=True)
        db.session.flush()
        agent = create_agent(Caller(user.id, "USER"), name="Bench", slug="bench",
                             version={"model": "gpt-4o-mini", "system_prompt": "Be quick."})
        db.session.commit()
        return info, user.id, agent.id


def _provider_baseline(base_url: str, samples: int) -> list[float]:
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-bench", base_url=base_url,
                     max_retries=0, stream_usage=True)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        for _chunk in llm.stream([SystemMessage("Be quick."), HumanMessage("ping")]):
            pass
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _start_workers(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "jobs.worker", "--queue", "agents"],
                             cwd=ROOT, env=os.environ.copy(), start_new_session=True)
            for _ in range(count)]


def _stop(workers: list[subprocess.Popen]) -> None:
    import signal

    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.wait(30)


def _start(info, user_id, agent_id):
    from app.agents import executions
    from app.agents.service import Caller, get_agent
    from tenants.context import activate

    with activate(info):
        caller = Caller(user_id, "USER")
        execution, _ = executions.start_execution(caller, get_agent(caller, agent_id),
                                                  input="ping")
        return execution.id


def _finished(info, ids):
    from sqlalchemy import select

    from app.agents.models import Execution
    from app.extensions import db
    from tenants.context import activate

    with activate(info):
        db.session.commit()
        rows = db.session.scalars(select(Execution).where(Execution.id.in_(ids))).all()
        return rows if all(r.is_terminal for r in rows) and len(rows) == len(ids) else None


def _wait(info, ids, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _finished(info, ids)
        if rows:
            return rows
        time.sleep(0.005)
    raise SystemExit("executions did not finish; is a worker running?")


def _sequential(app, info, user_id, agent_id, samples, provider_p50):
    _wait(info, [_start(info, user_id, agent_id)])  # warm-up (worker start, imports)
    waits, overheads = [], []
    for _ in range(samples):
        (row,) = _wait(info, [_start(info, user_id, agent_id)])
        assert row.status == "succeeded", (row.status, row.error_code)
        waits.append((row.started_at - row.created_at).total_seconds() * 1000)
        total = (row.finished_at - row.created_at).total_seconds() * 1000
        overheads.append(total - provider_p50)
    return waits, overheads


def _throughput(info, user_id, agent_id, jobs, workers):
    # Warm-up: every worker has imported everything before the clock starts.
    _wait(info, [_start(info, user_id, agent_id) for _ in range(workers * 2)])
    ids = [_start(info, user_id, agent_id) for _ in range(jobs)]
    rows = _wait(info, ids)
    first = min(r.started_at for r in rows)
    last = max(r.finished_at for r in rows)
    return jobs / max((last - first).total_seconds(), 1e-6)


if __name__ == "__main__":
    main()
