"""Server-rendered bar charts: the geometry is computed here, templates/_chart.html draws it.

Why SVG from the server: no script, no asset to pin, and the same markup prints, reads in a
screen reader (each bar has a <title>, every chart a table behind it) and works offline.

A chart covers a fixed window of days, every day a slot whether it had data or not, so one
day of data over 30 days is one narrow bar among 29 empty slots, and a 1-day window draws
one bar no wider than ``MAX_BAR`` in the middle instead of a block across the whole width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from app import clock

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36  # room for the y labels and the dates
MAX_BAR = 28
MAX_X_LABELS = 6


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: int


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass
class Chart:
    label: str
    unit: str
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    plot: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> list[tuple[date, int]]:
        return [(bar.day, bar.value) for bar in self.bars]

    @property
    def empty(self) -> bool:
        return self.total == 0


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times 10^k at or above ``value`` (at least 1): round axis tops."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _y_ticks(top: int, plot_top: float, plot_height: float) -> list[Tick]:
    steps = 4 if top >= 4 else top
    ticks = []
    for i in range(steps + 1):
        value = top * i / steps
        label = f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
        ticks.append(Tick(plot_top + plot_height - plot_height * i / steps, label))
    return ticks


def _day_label(day: date, span_days: int) -> str:
    return day.strftime("%d %b") if span_days <= 120 else day.strftime("%b %Y")


def daily_bars(rows: Iterable, days: int, *, value: Callable[[object], int], label: str,
               unit: str = "", until: datetime | None = None) -> Chart:
    """Bars for the last ``days`` UTC days ending ``until`` (today), from rows having ``.day``
    (a date); several rows of one day add up."""
    until_day = (until or clock.now()).date()
    first = until_day - timedelta(days=days - 1)
    per_day: dict[date, int] = {}
    for row in rows:
        per_day[row.day] = per_day.get(row.day, 0) + int(value(row))
    values = [(first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0))
              for i in range(days)]
    plot_left, plot_top = LEFT, TOP
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max((v for _, v in values), default=0))
    slot = plot_width / days
    bar_width = min(MAX_BAR, max(2.0, slot * 0.7))
    bars = []
    for i, (day, amount) in enumerate(values):
        height = plot_height * amount / top
        bars.append(Bar(x=round(plot_left + slot * i + (slot - bar_width) / 2, 2),
                        y=round(plot_top + plot_height - height, 2),
                        width=round(bar_width, 2), height=round(height, 2), day=day,
                        value=amount))
    every = max(1, math.ceil(days / MAX_X_LABELS))
    picks = sorted({*range(0, days, every), days - 1})
    if len(picks) > 1 and picks[-1] - picks[-2] < every / 2:
        picks.pop(-2)  # keep the last date readable rather than overlapping its neighbour
    x_ticks = [Tick(round(plot_left + slot * i + slot / 2, 2), _day_label(values[i][0], days))
               for i in picks]
    return Chart(label=label, unit=unit, bars=bars, total=sum(v for _, v in values),
                 y_ticks=_y_ticks(top, plot_top, plot_height), x_ticks=x_ticks,
                 plot={"left": plot_left, "top": plot_top, "width": plot_width,
                       "height": plot_height, "bottom": plot_top + plot_height})
