"""License validation with, for a known license, no database query and at most one Redis
round trip.

Embedded agents validate the same keys over and over, so this path is what the licensing
benchmark measures. Per validation:

1. the key is parsed and its signature verified in process (the tenant's keys are cached);
2. the license's snapshot comes from the process's cache (``snapshot``), read from the
   database only on a miss or after a change;
3. the answer is decided from the snapshot at the current time;
4. if the process's ledger (``ledger``) heard from Redis about this license and these
   budgets within its sync window, it takes the budgets and owes Redis the record: no
   round trip at all;
5. otherwise one Lua script, atomically: checks the snapshot's generation counters
   (``freshness``) and, if they moved, answers "stale" so that step 2 re-reads and the
   decision is made again; takes one request from the per-key and the per-IP budgets (both
   or neither, limits' sliding-window-counter algorithm); and records the validation (count,
   last time, log entry, flush flag: see ``counters``). What the ledger owes travels in the
   same round trip, and what Redis answers teaches the ledger.

This replaces flask-limiter on this one endpoint: flask-limiter evaluates its limits one
Redis call each, and headers cost another, where this endpoint's whole budget needs one.
Limits are still written and parsed the flask-limiter way (``120/minute``, via ``limits``).

If Redis fails, validation still answers (from the database): the budgets and counters are
skipped and the failure logged, as flask-limiter's in-memory fallback would keep the API up.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from limits import parse

from app.licensing import counters, freshness, keyformat, ledger, signing, snapshot
from app.licensing.validation import GENUINE, Decision, check_key, decide

log = logging.getLogger(__name__)

# Budgets (configurable with ALBEDO_RATE_LIMIT_LICENSE_KEY / _IP): per key, so one leaked
# key cannot hammer the endpoint; per IP, so one host cannot probe many keys.
LIMIT_DEFAULTS = {"KEY": "120/minute", "IP": "600/minute"}

_SCRIPT = """
-- KEYS: tenant generation, license generation, key budget (previous, current window),
--       IP budget (previous, current), counts hash, last-validated hash, log list, flush flag
-- ARGV: expected tenant generation of the snapshot, expected license generation,
--       key limit, key window (s), IP limit, IP window (s),
--       license id ('' = none), now (ISO), log entry, log cap, flush delay (s),
--       expected tenant generation of the signing keys ('' = do not check this one)
local tg = redis.call('get', KEYS[1]) or '0'
local lg = redis.call('get', KEYS[2]) or '0'
if (ARGV[1] ~= '' and ARGV[1] ~= tg) or (ARGV[2] ~= '' and ARGV[2] ~= lg)
    or (ARGV[12] ~= '' and ARGV[12] ~= tg) then
  return {0, tg, lg}
end
-- limits' sliding window counter: the previous window's count, weighted by how much of it
-- still overlaps the sliding window, plus the current window's count.
local function weighted(previous, current, expiry)
  local ttl = tonumber(redis.call('pttl', current))
  if ttl > 0 and ttl < expiry then
    redis.call('rename', current, previous)
    redis.call('set', current, 0, 'PX', ttl + expiry)
  end
  local pc = tonumber(redis.call('get', previous)) or 0
  local pttl = math.max(tonumber(redis.call('pttl', previous)), 0)
  local cc = tonumber(redis.call('get', current)) or 0
  local cttl = math.max(tonumber(redis.call('pttl', current)), 0)
  return math.floor(pc * pttl / expiry) + cc, cttl
end
local function take(current, expiry)
  if redis.call('exists', current) == 1 then
    redis.call('incrby', current, 1)
  else
    redis.call('set', current, 1, 'PX', expiry * 2)
  end
end
local key_limit, key_expiry = tonumber(ARGV[3]), tonumber(ARGV[4]) * 1000
local ip_limit, ip_expiry = tonumber(ARGV[5]), tonumber(ARGV[6]) * 1000
local key_used, key_ttl = weighted(KEYS[3], KEYS[4], key_expiry)
local ip_used, ip_ttl = weighted(KEYS[5], KEYS[6], ip_expiry)
if key_used + 1 > key_limit then
  return {1, 'key', math.max(key_ttl - key_expiry, 1000), key_limit}
end
if ip_used + 1 > ip_limit then
  return {1, 'ip', math.max(ip_ttl - ip_expiry, 1000), ip_limit}
end
take(KEYS[4], key_expiry)
take(KEYS[6], ip_expiry)
if ARGV[7] ~= '' then
  redis.call('hincrby', KEYS[7], ARGV[7], 1)
  redis.call('hset', KEYS[8], ARGV[7], ARGV[8])
end
redis.call('rpush', KEYS[9], ARGV[9])
redis.call('ltrim', KEYS[9], -tonumber(ARGV[10]), -1)
local scheduled = redis.call('set', KEYS[10], '1', 'NX', 'EX', tonumber(ARGV[11]))
return {2, key_limit - key_used - 1, ip_limit - ip_used - 1, scheduled and 1 or 0,
        math.max(key_ttl - key_expiry, 1000), math.max(ip_ttl - ip_expiry, 1000)}
"""


@dataclass(frozen=True)
class Budget:
    limit: int
    window: int  # seconds


@dataclass
class Outcome:
    decision: Decision
    # None when Redis could not be asked: no budgets applied, nothing recorded.
    remaining: int | None = None
    limit: int | None = None
    refused: str | None = None  # "key" or "ip": over that budget, nothing recorded
    retry_after: int = 0
    key_sha256: str = ""  # the presented key's hash, echoed in the answer (keyformat)


def budget(name: str) -> Budget:
    extra = current_app.extensions["albedo.settings"].extra
    return _parsed(extra.get(f"ALBEDO_RATE_LIMIT_LICENSE_{name}", LIMIT_DEFAULTS[name]))


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> Budget:
    item = parse(text)
    return Budget(item.amount, item.get_expiry())


def _script():
    from app.redis import script

    return script(_SCRIPT)


def _rate_key(scope: str, value: str) -> tuple[str, str]:
    extra = current_app.extensions["albedo.settings"].extra
    base = f"{extra.get('ALBEDO_QUEUE_PREFIX', '')}albedo-rl:{scope}:{value}"
    return f"{base}/-1", base  # (previous window, current window), as limits names them


def _generations(tenant_id: uuid.UUID, license_id: uuid.UUID) -> tuple[str, str]:
    from app.redis import get_redis

    values = get_redis().mget(freshness.tenant_key(tenant_id), freshness.license_key(license_id))
    return tuple(v.decode() if v is not None else "0" for v in values)  # type: ignore[return-value]


@dataclass(frozen=True)
class Scope:
    """What the request asks the license to be valid for (all optional)."""

    fingerprint: str | None = None
    product: str | None = None
    policy: str | None = None
    entitlements: tuple[str, ...] | None = None


def scope_of(fields: dict) -> Scope:
    """The scope of a request as the schema loaded it."""
    entitlements = fields.get("entitlements")
    return Scope(fields.get("fingerprint"), fields.get("product"), fields.get("policy"),
                 tuple(entitlements) if entitlements else None)


def validate(tenant_id: uuid.UUID, text: object, fingerprint: str | None,
             product: str | None, ip: str | None, now: datetime,
             scope: Scope | None = None) -> Outcome:
    """Decide, take the budgets and record: from the ledger when what it knows is fresh,
    else in one round trip to Redis in the common case."""
    scope = scope or Scope(fingerprint, product)
    keys = signing.keyset()
    checked = check_key(text, keys)
    cache = snapshot.cache()
    entry = None
    if checked.code == GENUINE:
        entry = cache.get(tenant_id, checked.license_id)
    key_hash = keyformat.presented_key_sha256(text)
    rates = (_rate_key("license-key", key_hash[:32]),
             _rate_key("license-ip", ip or "unknown"))
    if checked.code != GENUINE or entry is not None:
        decision = _decide(checked, entry, scope, now)
        local = _take_locally(tenant_id, checked, decision, rates, fingerprint, ip, now)
        if local is not None:
            local.key_sha256 = key_hash
            return local
    try:
        if checked.code == GENUINE and entry is None:
            entry = _refresh(tenant_id, checked.license_id, _generations(tenant_id,
                                                                          checked.license_id))
        for _ in range(3):
            decision = _decide(checked, entry, scope, now)
            answer = _run_script(tenant_id, text, checked, entry, decision, fingerprint, ip,
                                 now, rates, keys.generation)
            if answer[0] != 0:
                return _outcome(decision, answer, tenant_id, key_hash)
            generations = (answer[1].decode(), answer[2].decode())
            if generations[0] != keys.generation:
                # The tenant's keys (or its policies) changed: read the keys again and check
                # the key again, as every other process does at its next call.
                signing.forget_keyset(tenant_id)
                keys = signing.keyset()
                checked = check_key(text, keys)
            # The license changed since the snapshot was read: read it again and re-decide.
            entry = (_refresh(tenant_id, checked.license_id, generations)
                     if checked.code == GENUINE else None)
        # Changing faster than it can be read: answer from the last read, unchecked.
        decision = _decide(checked, entry, scope, now)
        answer = _run_script(tenant_id, text, checked, None, decision, fingerprint, ip, now,
                             rates, "")
        return _outcome(decision, answer, tenant_id, key_hash)
    except Exception as exc:
        if not _is_redis_error(exc):
            raise
        log.warning("license validation without Redis: no budgets, not recorded",
                    exc_info=True)
        if checked.code == GENUINE:
            entry = _refresh(tenant_id, checked.license_id, None)
        return Outcome(_decide(checked, entry, scope, now), key_sha256=key_hash)


def _take_locally(tenant_id, checked, decision: Decision, rates, fingerprint, ip,
                  now: datetime) -> Outcome | None:
    key_budget, ip_budget = budget("KEY"), budget("IP")
    book = ledger.of_app()
    # The tenant's generation covers its signing keys too: every answer depends on them.
    generations_of = ((tenant_id, checked.license_id) if checked.code == GENUINE
                      else (tenant_id,))
    local = book.take(generations_of, *rates, (key_budget.window * 1000,
                                                ip_budget.window * 1000))
    if local is None:
        return None
    if local.refused is not None:
        return Outcome(decision, remaining=0, limit=local.limit, refused=local.refused,
                       retry_after=local.retry_after)
    license_id = decision.snapshot.id if decision.snapshot is not None else None
    book.owe_record(tenant_id, license_id, now.isoformat(),
                    counters.log_entry(license_id, decision.code, fingerprint, ip, now))
    return Outcome(decision, remaining=local.remaining, limit=local.limit)


def _is_redis_error(exc: Exception) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError)


def _refresh(tenant_id: uuid.UUID, license_id: uuid.UUID,
             generations: tuple[str, str] | None) -> snapshot.Entry | None:
    read = snapshot.load(license_id)
    if read is None:
        return None  # a genuine key whose license is not here: NOT_FOUND, never cached
    if generations is None:
        cache_ = snapshot.cache()
        cache_.forget(tenant_id, license_id)
        return snapshot.Entry(read, ("", ""), 0.0)
    return snapshot.cache().put(tenant_id, read, generations)


def _decide(checked, entry, scope: Scope, now) -> Decision:
    if checked.code != GENUINE:
        return Decision(checked.code)
    if entry is None:
        return Decision("NOT_FOUND")
    return decide(entry.snapshot, scope.fingerprint, scope.product, now,
                  functools.partial(_executions_used, entry.snapshot, now),
                  policy_scope=scope.policy, entitlements=scope.entitlements)


def _executions_used(license_: snapshot.LicenseSnapshot, now: datetime) -> int:
    try:
        return counters.executions_used(license_.id, license_.policy.execution_period_seconds,
                                        now)
    except Exception as exc:
        if not _is_redis_error(exc):
            raise
        # Nothing can be counted while Redis is away either: answer, do not fail.
        log.warning("executions per period unknown without Redis", exc_info=True)
        return 0


def _run_script(tenant_id, text, checked, entry, decision: Decision, fingerprint, ip, now,
                rates, keys_generation: str):
    """The hot path's script, with whatever the ledger owes Redis in the same round trip;
    what Redis answers is taught to the ledger."""
    key_budget, ip_budget = budget("KEY"), budget("IP")
    keys_ = counters.keys_for(tenant_id)
    license_id = str(decision.snapshot.id) if decision.snapshot is not None else ""
    generation_keys = (freshness.tenant_key(tenant_id),
                       freshness.license_key(checked.license_id or "-"))
    expected = entry.generations if entry is not None else ("", "")
    log_entry = counters.log_entry(decision.snapshot.id if decision.snapshot else None,
                                   decision.code, fingerprint, ip, now)
    call = {"keys": [*generation_keys, *rates[0], *rates[1], keys_["counts"], keys_["last"],
                     keys_["log"], keys_["flag"]],
            "args": [*expected, key_budget.limit, key_budget.window, ip_budget.limit,
                     ip_budget.window, license_id, now.isoformat(), log_entry,
                     counters.LOG_CAP, counters.FLUSH_DELAY, keys_generation]}
    book = ledger.of_app()
    # Nothing this process took may still be on its way to Redis when the script counts the
    # budgets: what it answers is what the next local decisions count from (ledger.sending).
    with book.sending:
        owed = book.take_owed()
        asked_at = book.monotonic()
        if not owed:
            answer = _script()(**call)
        else:
            from app.redis import get_redis

            pipe = ledger.Pipeline(get_redis())
            flags = ledger.queue_owed(pipe, owed)
            pipe.script(_script(), call["keys"], call["args"])
            results = pipe.execute()
            ledger.schedule_won_flushes(flags, results)
            answer = results[-1]
    if answer[0] == 2:
        if (entry is not None or checked.code != GENUINE) and keys_generation:
            book.confirmed((tenant_id, checked.license_id) if checked.code == GENUINE
                           else (tenant_id,), asked_at)
        book.learned(rates[0], key_budget.limit, key_budget.limit - int(answer[1]),
                     -(-int(answer[4]) // 1000), asked_at)
        book.learned(rates[1], ip_budget.limit, ip_budget.limit - int(answer[2]),
                     -(-int(answer[5]) // 1000), asked_at)
    return answer


def _outcome(decision: Decision, answer: list, tenant_id: uuid.UUID,
             key_hash: str) -> Outcome:
    if answer[0] == 1:
        return Outcome(decision, remaining=0, limit=int(answer[3]),
                       refused=answer[1].decode(), retry_after=-(-int(answer[2]) // 1000),
                       key_sha256=key_hash)
    if answer[3]:
        counters.schedule_flush(tenant_id)
    return Outcome(decision, remaining=max(min(int(answer[1]), int(answer[2])), 0),
                   limit=budget("KEY").limit, key_sha256=key_hash)
