"""What a process may decide about validations without asking Redis, and what it owes Redis.

The hot path's Redis script (``hotpath``) confirms a license snapshot is current, takes the
per-key and per-IP budgets and records the validation. Asking it on every validation made
the round trip — a wait on another process, on a busy machine — most of a validation's
cost. So each process keeps a ledger: for ``ALBEDO_LICENSE_SYNC_SECONDS`` (default 0.1 s)
after Redis confirmed a license's generations and reported a budget's use, the process
decides validations of that key from that IP itself, counting what it takes against the
budgets it was told, and owes Redis the takes and the records. What it owes goes with its
next script call, or with a flusher thread when no validation comes, at the latest one
sync window later.

What this trades, within one sync window (and only across processes: a process always
sees its own commits at once):

* a license changed by another process (suspended, revoked, a machine added) is seen up to
  one window late;
* a budget can be overdrawn by what the other processes took since they last synced;
* validation counts reach Redis (and so the flush job) up to one window late, and a
  process killed without warning loses at most one window of them.

``ALBEDO_LICENSE_SYNC_SECONDS=0`` asks Redis on every validation: exact budgets, changes
seen at once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from flask import Flask, current_app

log = logging.getLogger(__name__)

# Takes owed for many budgets at once: the sliding-window roll and take of hotpath's script,
# n at a time. KEYS: previous, current per budget; ARGV: expiry (ms), n per budget.
OWED_TAKES_SCRIPT = """
for i = 1, #KEYS, 2 do
  local previous, current = KEYS[i], KEYS[i + 1]
  local expiry, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local ttl = tonumber(redis.call('pttl', current))
  if ttl > 0 and ttl < expiry then
    redis.call('rename', current, previous)
    redis.call('set', current, 0, 'PX', ttl + expiry)
  end
  if redis.call('exists', current) == 1 then
    redis.call('incrby', current, n)
  else
    redis.call('set', current, n, 'PX', expiry * 2)
  end
end
return 0
"""


@dataclass
class BudgetView:
    limit: int
    used: int  # the window's use as Redis last reported it, plus what this process took since
    retry_after: int  # seconds, as Redis last computed it
    synced_at: float


@dataclass
class Local:
    """A decision taken without Redis: admitted (``refused`` None) or over a budget."""

    remaining: int = 0
    limit: int = 0
    refused: str | None = None
    retry_after: int = 0


@dataclass
class Records:
    counts: Counter = field(default_factory=Counter)
    last: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


@dataclass
class Owed:
    takes: Counter = field(default_factory=Counter)  # (previous, current, expiry ms) -> n
    records: dict[uuid.UUID, Records] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.takes or self.records)


class Ledger:
    def __init__(self, app: Flask, window: float) -> None:
        self.app = app
        self.window = window
        self._lock = threading.Lock()
        # Held from taking what is owed until Redis has it. Without it a validation's script
        # could reach Redis before the takes the flusher had just taken from this ledger: its
        # answer then under-counted the budgets, and the next local decisions admitted past
        # them (tests/test_licensing_validation.py failed so under load).
        self.sending = threading.Lock()
        self._checked: dict[uuid.UUID, float] = {}  # tenant or license id -> confirmed at
        self._budgets: dict[str, BudgetView] = {}  # current-window key -> view
        self._owed = Owed()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self.monotonic = time.monotonic  # tests move it to cross a sync window

    # --- deciding locally ------------------------------------------------------------------

    def take(self, generations_of: tuple[uuid.UUID, ...], key_rate: tuple[str, str],
             ip_rate: tuple[str, str], expiry_ms: tuple[int, int]) -> Local | None:
        """Take one from both budgets if everything needed is fresh; None: ask Redis."""
        if self.window <= 0:
            return None
        now = self.monotonic()
        with self._lock:
            if any(now - self._checked.get(i, -self.window) >= self.window
                   for i in generations_of):
                return None
            key_view, ip_view = self._budgets.get(key_rate[1]), self._budgets.get(ip_rate[1])
            if (key_view is None or ip_view is None or now - key_view.synced_at >= self.window
                    or now - ip_view.synced_at >= self.window):
                return None
            for name, view in (("key", key_view), ("ip", ip_view)):
                if view.used + 1 > view.limit:
                    return Local(0, view.limit, name, view.retry_after)
            key_view.used += 1
            ip_view.used += 1
            self._owed.takes[(*key_rate, expiry_ms[0])] += 1
            self._owed.takes[(*ip_rate, expiry_ms[1])] += 1
            return Local(min(key_view.limit - key_view.used, ip_view.limit - ip_view.used),
                         key_view.limit)

    def owe_record(self, tenant_id: uuid.UUID, license_id: uuid.UUID | None, at: str,
                   log_entry: str) -> None:
        with self._lock:
            records = self._owed.records.setdefault(tenant_id, Records())
            if license_id is not None:
                records.counts[str(license_id)] += 1
                records.last[str(license_id)] = at
            records.log.append(log_entry)
            if not self._closed and (self._flusher is None or not self._flusher.is_alive()):
                self._flusher = threading.Thread(target=self._flush_soon, daemon=True,
                                                 name="albedo-validation-ledger")
                self._flusher.start()

    # --- what Redis said ---------------------------------------------------------------------

    def confirmed(self, ids: tuple[uuid.UUID, ...], since: float) -> None:
        """Redis confirmed these generations (a tenant's, a license's) at ``since``."""
        if self.window <= 0:
            return  # nothing is ever decided locally: keep nothing
        with self._lock:
            for i in ids:
                self._checked[i] = since
            self._trim(self._checked)

    def learned(self, rate: tuple[str, str], limit: int, used: int, retry_after: int,
                since: float) -> None:
        if self.window <= 0:
            return
        with self._lock:
            self._budgets[rate[1]] = BudgetView(limit, used, retry_after, since)
            self._trim(self._budgets)

    def forget_checks(self) -> None:
        """This process committed a licensing change: confirm everything again first."""
        with self._lock:
            self._checked.clear()

    def _trim(self, mapping: dict) -> None:
        # Entries older than a window are useless: drop them all once the map grows.
        if len(mapping) > 10_000:
            mapping.clear()

    # --- paying Redis --------------------------------------------------------------------------

    def take_owed(self) -> Owed:
        with self._lock:
            owed, self._owed = self._owed, Owed()
            return owed

    def flush(self) -> bool:
        """Send what is owed now (app context needed); False when nothing was owed."""
        from app.redis import get_redis

        with self.sending:
            owed = self.take_owed()
            if not owed:
                return False
            try:
                pipe = Pipeline(get_redis())
                scheduled = queue_owed(pipe, owed)
                results = pipe.execute()
            except Exception:
                log.warning("could not record %d validations in Redis",
                            sum(len(r.log) for r in owed.records.values()), exc_info=True)
                return True
        schedule_won_flushes(scheduled, results)
        return True

    def close(self) -> None:
        """Pay what is owed and stop the flusher (an app being thrown away, in tests)."""
        with self._lock:
            self._closed = True
        with self.app.app_context():
            self.flush()

    def _flush_soon(self) -> None:
        while True:
            time.sleep(max(self.window, 0.01))
            if self._closed:
                return
            with self.app.app_context():
                flushed = self.flush()
            with self._lock:
                if not flushed and not self._owed:
                    self._flusher = None
                    return


class Pipeline:
    """One round trip of commands and scripts. redis-py's own pipeline asks ``SCRIPT
    EXISTS`` first, every time, when it carries a script: a second round trip. This sends
    EVALSHA and, should Redis have lost a script (a restart), runs that one again alone."""

    def __init__(self, redis) -> None:
        self.pipe = redis.pipeline(transaction=False)
        self._scripts: list[tuple[int, object, list, list]] = []

    def script(self, script, keys: list, args: list) -> None:
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)
        self._scripts.append((self.last_index(), script, keys, args))

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)  # plain commands

    def last_index(self) -> int:
        """Where the last queued command's result will be in ``execute()``'s list."""
        return len(self.pipe.command_stack) - 1

    def execute(self) -> list:
        from redis.exceptions import NoScriptError

        results = self.pipe.execute(raise_on_error=False)
        for index, script, keys, args in self._scripts:
            if isinstance(results[index], NoScriptError):
                results[index] = script(keys=keys, args=args)  # loads it, then runs it
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results


def queue_owed(pipe: Pipeline, owed: Owed) -> list[tuple[int, uuid.UUID]]:
    """Queue the owed takes and records on a pipeline; returns (result index, tenant) of each
    tenant's flush flag, to schedule the flush job where the flag was won."""
    from app.licensing import counters

    if owed.takes:
        keys, args = [], []
        for (previous, current, expiry), n in owed.takes.items():
            keys += [previous, current]
            args += [expiry, n]
        pipe.script(_owed_takes_script(), keys, args)
    flags = []
    for tenant_id, records in owed.records.items():
        keys = counters.keys_for(tenant_id)
        for license_id, n in records.counts.items():
            pipe.hincrby(keys["counts"], license_id, n)
        if records.last:
            pipe.hset(keys["last"], mapping=records.last)
        pipe.rpush(keys["log"], *records.log)
        pipe.ltrim(keys["log"], -counters.LOG_CAP, -1)
        pipe.set(keys["flag"], "1", nx=True, ex=counters.FLUSH_DELAY)
        flags.append((pipe.last_index(), tenant_id))
    return flags


def schedule_won_flushes(flags: list[tuple[int, uuid.UUID]], results: list) -> None:
    from app.licensing import counters

    for index, tenant_id in flags:
        if results[index]:
            counters.schedule_flush(tenant_id)


def _owed_takes_script():
    from app.redis import script

    return script(OWED_TAKES_SCRIPT)


def of_app() -> Ledger:
    """This app's ledger (one per process and app, like the snapshot cache)."""
    ledger = current_app.extensions.get("albedo.validation_ledger")
    if ledger is None:
        window = current_app.extensions["albedo.settings"].license_sync_seconds
        ledger = current_app.extensions.setdefault(
            "albedo.validation_ledger", Ledger(current_app._get_current_object(), window))
    return ledger
