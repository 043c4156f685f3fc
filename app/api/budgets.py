"""Every rate budget of a request in one Redis round trip.

flask-limiter evaluates each limit with a script of its own and reads the window again for
the headers: four round trips for an API request (IP, credential and tenant budgets, then the
headers), each a wait on the Redis process that a busy machine makes long. ``OneTripLimiter``
keeps flask-limiter for what it does well — limits declared the usual way (``default_limits``,
``@limiter.limit``, ``@limiter.exempt``), their scopes, keys and exemptions — and replaces
only the evaluation: the request's limits go to Redis together, in one script that takes them
in flask-limiter's order (stopping at the first refusal, which takes nothing further) and
answers what the headers need.

The algorithm, the Redis keys and the answers are limits' sliding-window counter's, exactly:
a deployment half on flask-limiter's evaluation and half on this one shares the same counters.

The same round trip carries *piggybacks*: a per-request cache (``app.auth.principal_cache``)
names generation counters it wants read, and gets their values back with the budgets, so a
cached credential is confirmed current without a round trip of its own.

When Redis fails, the limits fall back to flask-limiter's in-memory storage in this process
(logged once), as flask-limiter does; Redis is tried again after 1, 2, 4 … 32 seconds and
takes over again when it answers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import flask
from flask_limiter import Limiter
from flask_limiter._limits import RuntimeLimit
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_qualified_name
from limits import RateLimitItem
from limits.storage import MemoryStorage
from werkzeug.http import parse_date

log = logging.getLogger(__name__)

# limits' RedisStorage names its keys "<prefix>:{<key>}" and "<prefix>:{<key>}/-1".
STORAGE_PREFIX = "LIMITS"

BUDGETS_SCRIPT = """
-- KEYS: ARGV[1] generation counters to read, then per budget: previous, current window
-- ARGV: number of generation counters, then per budget: limit, window (s), cost
-- limits' sliding window counter, with the reads it repeats taken once: Redis time stands
-- still inside a script, so a TTL read once is the TTL later in the same call.
local n_gen = tonumber(ARGV[1])
local generations = {}
if n_gen > 0 then
  generations = redis.call('mget', unpack(KEYS, 1, n_gen))
  for i = 1, n_gen do
    generations[i] = generations[i] or '0'
  end
end
local stats = {}
local refused = 0
local budget = 0
for k = n_gen + 1, #KEYS, 2 do
  budget = budget + 1
  local previous, current = KEYS[k], KEYS[k + 1]
  local a = 2 + (budget - 1) * 3
  local limit, expiry, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]) * 1000, tonumber(ARGV[a + 2])
  -- roll the window, weigh the previous one, take
  local ttl = tonumber(redis.call('pttl', current))
  local exists = ttl ~= -2
  local cc, cttl
  if ttl > 0 and ttl < expiry then
    redis.call('rename', current, previous)
    redis.call('set', current, 0, 'PX', ttl + expiry)
    cc, cttl = 0, ttl + expiry
  else
    cc = exists and (tonumber(redis.call('get', current)) or 0) or 0
    cttl = math.max(ttl, 0)
  end
  local pc = tonumber(redis.call('get', previous)) or 0
  local pttl = math.max(tonumber(redis.call('pttl', previous)), 0)
  if cost > limit or math.floor(pc * pttl / expiry) + cc + cost > limit then
    refused = budget
  else
    if exists then
      redis.call('incrby', current, cost)
    else
      redis.call('set', current, cost, 'PX', expiry * 2)
      cttl = expiry * 2
    end
    cc = cc + cost
  end
  stats[#stats + 1] = pc
  stats[#stats + 1] = pttl
  stats[#stats + 1] = cc
  stats[#stats + 1] = cttl
  if refused > 0 then
    break
  end
end
return {refused, generations, stats}
"""

_MAX_BACKOFF = 32.0


@dataclass
class Piggyback:
    """Generation counters to read in the budgets' round trip; ``settle`` gets their values,
    or None when Redis could not be asked."""

    keys: tuple[str, ...]
    settle: Callable[[list[str] | None], None]


@dataclass
class Window:
    """One budget of this request after its evaluation: what the headers are made of."""

    item: RateLimitItem
    shared: bool
    breached: bool
    previous_count: int
    previous_ttl: float  # seconds
    current_count: int
    current_ttl: float

    def remaining(self) -> int:
        expiry = self.item.get_expiry()
        weighted = self.previous_count * self.previous_ttl / expiry + self.current_count
        return max(0, self.item.amount - math.floor(weighted))

    def reset_at(self, now: float) -> int:
        """limits' ``get_window_stats`` reset time, as flask-limiter turns it into a header."""
        expiry = self.item.get_expiry()
        previous_in = current_in = math.inf
        if self.previous_count:
            previous_in = self.previous_ttl % (expiry / self.previous_count)
        if self.current_count:
            current_in = self.current_ttl % expiry
        soonest = min(previous_in, current_in)
        return int((now + (soonest if soonest != math.inf else 0)) + 1)


_WINDOWS = "_albedo_rate_windows"
# The environ key under which the read lane hands over the budgets it took: (their keys,
# windows, {generation counter: value}).
LANE_TAKEN = "albedo.lane.taken"
# Whether the route took exactly the lane's budgets (True) or evaluated others (False): only
# an answer given under the lane's budgets alone may be remembered (app/api/lane/remembered).
LANE_BUDGETS_ONLY = "albedo.lane.budgets_only"
_PIGGYBACKED = "_albedo_rate_piggybacked"


class OneTripLimiter(Limiter):
    """flask-limiter's declarations, evaluated in one Redis script per request."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.piggybacks: list[Callable[[], Piggyback | None]] = []

    def add_piggyback(self, probe: Callable[[], Piggyback | None]) -> None:
        if probe not in self.piggybacks:
            self.piggybacks.append(probe)

    # --- which limits apply: flask-limiter's own resolution --------------------------------

    def _request_limits(self, callable_name: str | None, in_middleware: bool
                        ) -> list[RuntimeLimit]:
        endpoint = self.identify_request()
        if (not endpoint or not (self.enabled and self.initialized)
                or endpoint.split(".")[-1] == "static"
                or any(fn() for fn in self._request_filters)):
            return []
        defaults, decorated = self._resolved(endpoint, callable_name, in_middleware)
        context = self.context
        seen = context.seen_limits
        # flask-limiter's OrderedSet(defaults) - seen, without building two OrderedSets per
        # request (they showed in profiles of /me): same members, same order.
        fresh = [lim for lim in dict.fromkeys(defaults) if lim not in seen]
        seen.update(defaults)
        return [lim for lim in sorted([*fresh, *decorated], key=lambda x: x.limit)
                if not (lim.is_exempt or lim.method_exempt)]

    def _resolved(self, endpoint: str, callable_name: str | None, in_middleware: bool):
        """flask-limiter's limits of an endpoint (parsed from their strings, exemptions
        applied), kept per app and settings object: resolving them again was a tenth of a
        warm request. So a limit given as a callable is read again when the app's settings
        object changes (Albedo's budgets come from settings), not on every request."""
        app = flask.current_app
        blueprint = flask.request.blueprint
        settings = app.extensions.get("albedo.settings")
        key = (endpoint, blueprint, callable_name, in_middleware)
        cache = app.extensions.setdefault("albedo.resolved_limits", {})
        entry = cache.get(key)
        if entry is None or entry[0] is not settings:
            if callable_name:
                name = callable_name
            else:
                view_func = app.view_functions.get(endpoint)
                name = get_qualified_name(view_func) if view_func else ""
            marked = name in self._marked_for_limiting or self.limit_manager.has_hints(endpoint)
            defaults, decorated = self.limit_manager.resolve_limits(
                app, endpoint, blueprint, name, in_middleware, marked)
            entry = cache[key] = (settings, list(defaults), list(decorated))
        return entry[1], entry[2]

    # --- evaluation ---------------------------------------------------------------------------

    def _check_request_limit(self, callable_name: str | None = None,
                             in_middleware: bool = True) -> None:
        endpoint = self.identify_request()
        limits, budgets = [], []
        for lim in self._request_limits(callable_name, in_middleware):
            args = [lim.key_func(), lim.scope_for(endpoint, flask.request.method)]
            if not all(args):
                log.error("Skipping limit: %s. Empty value found in parameters.", lim.limit)
                continue
            if self._key_prefix:
                args = [self._key_prefix, *args]
            limits.append(lim)
            budgets.append((lim, lim.limit.key_for(*args), lim.deduction_amount))
        if not budgets:
            return
        piggybacks = self._piggybacks()
        windows: list[Window] | None = None
        outage = _outage()
        taken = flask.request.environ.pop(LANE_TAKEN, None)
        if taken is not None and taken[0] != [key for _lim, key, _cost in budgets]:
            log.warning("the read lane took other budgets than %s's; taking them here", endpoint)
            taken = None
        environ = flask.request.environ
        environ[LANE_BUDGETS_ONLY] = taken is not None and LANE_BUDGETS_ONLY not in environ
        if taken is not None:
            # The read lane (app/api/lane) took these budgets and read these counters in its
            # round trip, then left the request to the route: not taken twice.
            _keys, windows, seen = taken
            for piggyback in piggybacks:
                piggyback.settle(_values_for(piggyback.keys, seen))
        elif outage.may_ask():
            try:
                windows, generations = self._in_redis(budgets, piggybacks)
                outage.answered()
                for piggyback, values in zip(piggybacks, generations, strict=True):
                    piggyback.settle(values)
            except Exception as exc:
                if not _is_redis_error(exc):
                    raise
                outage.failed()
        if windows is None:
            for piggyback in piggybacks:
                piggyback.settle(None)
            windows = self._in_memory(budgets, outage.fallback)
        flask.g.setdefault(_WINDOWS, []).extend(windows)
        refused = next((w for w in windows if w.breached), None)
        if refused is not None:
            lim = limits[windows.index(refused)]
            log.info("ratelimit %s exceeded at endpoint: %s", lim.limit, endpoint)
            # Which budget refused, for the refusal metrics (app/ops/instrument.py).
            flask.g.rate_limit_refused_scope = lim.scope_for(endpoint, flask.request.method)
            raise RateLimitExceeded(lim)

    def _piggybacks(self) -> list[Piggyback]:
        if flask.g.get(_PIGGYBACKED):
            return []  # one evaluation per request carries them
        flask.g.setdefault(_PIGGYBACKED, True)
        return [p for p in (probe() for probe in self.piggybacks) if p is not None]

    def _in_redis(self, budgets, piggybacks: list[Piggyback]
                  ) -> tuple[list[Window], list[list[str]]]:
        generation_keys = [key for p in piggybacks for key in p.keys]
        windows, values = take(
            [(lim.limit, lim.shared, key, cost) for lim, key, cost in budgets], generation_keys)
        split, at = [], 0
        for p in piggybacks:
            split.append(values[at:at + len(p.keys)])
            at += len(p.keys)
        return windows, split

    def _in_memory(self, budgets, storage: MemoryStorage) -> list[Window]:
        if not self._in_memory_fallback_enabled:
            return []  # admitted, as flask-limiter swallows the error without a fallback
        windows = []
        for lim, key, cost in budgets:
            acquired = storage.acquire_sliding_window_entry(
                key, lim.limit.amount, lim.limit.get_expiry(), cost)
            pc, pttl, cc, cttl = storage.get_sliding_window(key, lim.limit.get_expiry())
            windows.append(Window(lim.limit, lim.shared, not acquired, int(pc), float(pttl),
                                  int(cc), float(cttl)))
            if not acquired:
                break
        return windows

    # --- headers ------------------------------------------------------------------------------

    def inject_headers(self, response: flask.Response) -> flask.Response:
        """X-RateLimit-* of the request's most telling budget (the refused one, else the first
        budget of its own, else the first shared one), and Retry-After, as flask-limiter."""
        windows: list[Window] = flask.g.get(_WINDOWS) or []
        if not windows:
            return response
        now = time.time()
        headers = window_headers(windows, now)
        for name, value in headers:
            response.headers.add(name, value)
        reset_at = int(headers[2][1])
        existing = response.headers.get("Retry-After")
        if existing is not None:
            if existing.isdigit():
                reset_at = max(int(now + int(existing)), reset_at)
            elif (when := parse_date(existing)) is not None:
                reset_at = max(int(when.timestamp()), reset_at)
        response.headers.set("Retry-After", str(int(reset_at - now)))
        return response


def window_headers(windows: list[Window], now: float) -> list[tuple[str, str]]:
    """X-RateLimit-Limit, -Remaining and -Reset of the most telling of ``windows``."""
    chosen = next((w for w in windows if w.breached), None) or next(
        (w for w in windows if not w.shared), windows[0])
    return [("X-RateLimit-Limit", str(chosen.item.amount)),
            ("X-RateLimit-Remaining", str(chosen.remaining())),
            ("X-RateLimit-Reset", str(chosen.reset_at(now)))]


def take(budgets: list[tuple[RateLimitItem, bool, str, int]], generation_keys: list[str]
         ) -> tuple[list[Window], list[str]]:
    """Evaluate ``budgets`` — (limit, shared, flask-limiter's key, cost) in flask-limiter's
    order — and read ``generation_keys``, in one script call (raises on a Redis failure)."""
    from app.redis import script_line

    keys, args = list(generation_keys), [len(generation_keys)]
    for item, _shared, key, cost in budgets:
        current = f"{STORAGE_PREFIX}:{{{key}}}"
        keys += [f"{current}/-1", current]
        args += [item.amount, item.get_expiry(), cost]
    refused, generations, stats = script_line(BUDGETS_SCRIPT)(keys, args)
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in generations]
    windows = []
    for i in range(len(stats) // 4):
        item, shared = budgets[i][0], budgets[i][1]
        pc, pttl, cc, cttl = (int(x) for x in stats[i * 4:i * 4 + 4])
        windows.append(Window(item, shared, i + 1 == int(refused), pc, pttl / 1000, cc,
                              cttl / 1000))
    return windows, values


def _values_for(keys: tuple[str, ...], seen: dict[str, str]) -> list[str] | None:
    """A piggyback's counters from what the lane read, or read now when it read other ones."""
    if all(key in seen for key in keys):
        return [seen[key] for key in keys]
    from app.auth import generations

    try:
        return list(generations.read(keys))
    except Exception as exc:
        if not _is_redis_error(exc):
            raise
        return None


@dataclass
class Outage:
    """One app's view of its Redis for the budgets, and its per-process fallback counters."""

    dead: bool = False
    retry_at: float = 0.0
    backoff: float = 1.0
    fallback: MemoryStorage = field(default_factory=MemoryStorage)

    def may_ask(self) -> bool:
        return not self.dead or time.monotonic() >= self.retry_at

    def answered(self) -> None:
        if self.dead:
            log.info("Rate limit storage recovered")
        self.dead = False
        self.backoff = 1.0

    def failed(self) -> None:
        if not self.dead:
            log.warning("Rate limit storage unreachable - falling back to in-memory storage",
                        exc_info=True)
        self.dead = True
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, _MAX_BACKOFF)


def _outage() -> Outage:
    # Per app, like its Redis client: two apps in one process (tests) do not share an outage.
    extensions = flask.current_app.extensions
    outage = extensions.get("albedo.rate_outage")
    if outage is None:
        outage = extensions.setdefault("albedo.rate_outage", Outage())
    return outage


def _is_redis_error(exc: Exception) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError)
