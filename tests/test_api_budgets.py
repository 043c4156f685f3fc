"""The one-trip budgets script is limits' sliding-window counter: the same keys, decisions
and window figures as the library's own strategy, the two taking turns on one counter."""

from __future__ import annotations

import time
import uuid

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from app.api import budgets


def test_the_script_and_the_library_take_turns_on_one_counter_and_agree(app):
    from app.api.limits import storage_uri

    library = SlidingWindowCounterRateLimiter(
        storage_from_string(storage_uri(app.extensions["albedo.settings"])))
    item = parse("4/second")
    parts = ("budgets-test", uuid.uuid4().hex, "ip")
    with app.app_context():
        def ours() -> budgets.Window:
            windows, values = budgets.take([(item, True, item.key_for(*parts), 1)],
                                           ["budgets-test:counter"])
            assert values == ["0"]
            return windows[0]

        # A fresh window: four taken, whoever takes them, then both refuse.
        started = time.monotonic()
        decisions, remaining = [], []
        for turn in range(6):
            if turn % 2 == 0:
                window = ours()
                decisions.append(not window.breached)
                remaining.append(window.remaining())
            else:
                decisions.append(library.hit(item, *parts))
                remaining.append(library.get_window_stats(item, *parts).remaining)
        assert decisions == [True, True, True, True, False, False]
        assert remaining == [3, 2, 1, 0, 0, 0]
        # 1.3 s later the window has rolled: the previous one weighs 4 * 0.7 → 2, so two
        # more are taken (by either), then both refuse again.
        time.sleep(max(0.0, 1.3 - (time.monotonic() - started)))
        rolled = [not ours().breached, library.hit(item, *parts), not ours().breached,
                  library.hit(item, *parts)]
        assert rolled == [True, True, False, False]


def test_generation_counters_read_in_the_same_call(app):
    with app.app_context():
        from app.redis import get_redis

        get_redis().set("budgets-test:a", "7")
        windows, values = budgets.take([], ["budgets-test:a", "budgets-test:never"])
    assert windows == [] and values == ["7", "0"]
