"""The widget feature's settings, read from ``settings.extra`` and validated at start.

* ``ALBEDO_WIDGET_TOKEN_SECONDS`` (600, at most 900): how long a widget token lives.
* ``ALBEDO_WIDGET_RATE_LIMIT_VISITOR`` (``20/minute``) and ``ALBEDO_WIDGET_RATE_LIMIT_IP``
  (``60/minute``): messages (and token exchanges) per visitor of a key, and per client IP.
* ``ALBEDO_WIDGET_MONTHLY_EXECUTIONS`` (none): the monthly cap of a key created without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app
from limits import RateLimitItem, parse

MAX_TOKEN_SECONDS = 900


class WidgetConfigError(ValueError):
    """A widget setting is malformed; the message names the variable and the fix."""


def _rate(extra: Mapping[str, str], name: str, default: str) -> str:
    value = extra.get(name, default)
    try:
        parse(value)
    except ValueError:
        raise WidgetConfigError(f"{name} is a rate such as 20/minute, not {value!r}") from None
    return value


@dataclass(frozen=True)
class WidgetConfig:
    token_seconds: int = 600
    rate_visitor: str = "20/minute"
    rate_ip: str = "60/minute"
    default_monthly_cap: int | None = None

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> WidgetConfig:
        raw = extra.get("ALBEDO_WIDGET_TOKEN_SECONDS", "600")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOKEN_SECONDS:
            raise WidgetConfigError("ALBEDO_WIDGET_TOKEN_SECONDS is a whole number of seconds "
                                    f"from 1 to {MAX_TOKEN_SECONDS}, not {raw!r}")
        cap = extra.get("ALBEDO_WIDGET_MONTHLY_EXECUTIONS", "").strip()
        if cap and (not cap.isdigit() or int(cap) > 2**31 - 1):
            raise WidgetConfigError("ALBEDO_WIDGET_MONTHLY_EXECUTIONS is a whole number, "
                                    f"not {cap!r}")
        return cls(token_seconds=int(raw),
                   rate_visitor=_rate(extra, "ALBEDO_WIDGET_RATE_LIMIT_VISITOR", "20/minute"),
                   rate_ip=_rate(extra, "ALBEDO_WIDGET_RATE_LIMIT_IP", "60/minute"),
                   default_monthly_cap=int(cap) if cap else None)

    def rate(self, which: str) -> RateLimitItem:
        return parse(self.rate_visitor if which == "visitor" else self.rate_ip)


def widget_config() -> WidgetConfig:
    config = current_app.extensions.get("albedo.widget_config")
    if config is None:
        config = WidgetConfig.from_extra(current_app.extensions["albedo.settings"].extra)
        current_app.extensions["albedo.widget_config"] = config
    return config
