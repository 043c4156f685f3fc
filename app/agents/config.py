"""The agents feature's configuration, read from ``settings.extra`` and validated once.

Environment variables (all optional):

* ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``: the platform's provider. A base URL without a key is
  allowed (a local Ollama or vLLM needs none). A tenant may bring its own key instead.
* ``ALBEDO_MODEL_PRICES``: JSON ``{"model": {"input": usd_per_1M, "output": usd_per_1M}}``.
* ``ALBEDO_MODEL_CONTEXT``: JSON ``{"model": context_tokens}`` for history trimming.
* ``ALBEDO_AGENTS_TIMEOUT_SECONDS`` (hard timeout per execution, default 120),
  ``ALBEDO_AGENTS_RETRIES`` (provider retries before the first token, default 3),
  ``ALBEDO_AGENTS_RETRY_BACKOFF`` (first backoff in seconds, doubled each time, default 1).
* ``ALBEDO_SSE_HEARTBEAT_SECONDS`` (default 15): how often an idle execution stream sends a
  heartbeat comment, so proxies and load balancers keep the connection open.
* ``ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS`` (default 100), ``ALBEDO_API_KEY_MONTHLY_EXECUTIONS``
  and ``ALBEDO_LICENSE_MONTHLY_EXECUTIONS`` (default: no limit of their own).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import current_app

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    # USD per million tokens (input, output); override with ALBEDO_MODEL_PRICES.
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}
DEFAULT_CONTEXT_TOKENS = 8192


class AgentsConfigError(ValueError):
    """An agents setting is malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class AgentsConfig:
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: DEFAULT_PRICES)
    context_tokens: Mapping[str, int] = field(default_factory=dict)
    timeout_seconds: float = 120.0
    retries: int = 3
    retry_backoff: float = 1.0
    sse_heartbeat_seconds: float = 15.0
    free_plan_monthly_executions: int = 100
    api_key_monthly_executions: int | None = None
    license_monthly_executions: int | None = None

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> AgentsConfig:
        prices = dict(DEFAULT_PRICES)
        for model, price in _json(extra, "ALBEDO_MODEL_PRICES", {}).items():
            try:
                prices[model] = (float(price["input"]), float(price["output"]))
            except (KeyError, TypeError, ValueError):
                raise AgentsConfigError(
                    f"ALBEDO_MODEL_PRICES[{model!r}] must be "
                    '{"input": usd_per_million, "output": usd_per_million}') from None
        context = {m: int(n) for m, n in _json(extra, "ALBEDO_MODEL_CONTEXT", {}).items()}
        return cls(
            openai_api_key=extra.get("OPENAI_API_KEY") or None,
            openai_base_url=(extra.get("OPENAI_BASE_URL") or "").rstrip("/") or None,
            prices=prices, context_tokens=context,
            timeout_seconds=_number(extra, "ALBEDO_AGENTS_TIMEOUT_SECONDS", 120.0, float),
            retries=_number(extra, "ALBEDO_AGENTS_RETRIES", 3, int),
            retry_backoff=_number(extra, "ALBEDO_AGENTS_RETRY_BACKOFF", 1.0, float),
            sse_heartbeat_seconds=_heartbeat(extra),
            free_plan_monthly_executions=_number(
                extra, "ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS", 100, int),
            api_key_monthly_executions=_number(
                extra, "ALBEDO_API_KEY_MONTHLY_EXECUTIONS", None, int),
            license_monthly_executions=_number(
                extra, "ALBEDO_LICENSE_MONTHLY_EXECUTIONS", None, int),
        )

    @property
    def default_model(self) -> str:
        """The model a customer's new agent runs on: customers never choose (nor see) the
        provider's model, so the first priced one (the defaults' first, gpt-4o-mini)."""
        return next(iter(self.prices), "")

    def context_for(self, model: str) -> int:
        return self.context_tokens.get(model, DEFAULT_CONTEXT_TOKENS)

    def cost_micros(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in millionths of a US dollar: a per-million price times tokens is exactly that."""
        input_price, output_price = self.prices.get(model, (0.0, 0.0))
        return round(prompt_tokens * input_price + completion_tokens * output_price)


def _json(extra: Mapping[str, str], name: str, default: dict) -> dict:
    raw = extra.get(name)
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        raise AgentsConfigError(f"{name} must be a JSON object") from None
    if not isinstance(value, dict):
        raise AgentsConfigError(f"{name} must be a JSON object")
    return value


def _number(extra: Mapping[str, str], name: str, default, kind):
    raw = extra.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise AgentsConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise AgentsConfigError(f"{name} cannot be negative")
    return value


def _heartbeat(extra: Mapping[str, str]) -> float:
    # Zero would make the stream's blocking read wait forever (XREAD BLOCK 0), never beating.
    value = _number(extra, "ALBEDO_SSE_HEARTBEAT_SECONDS", 15.0, float)
    if value <= 0:
        raise AgentsConfigError("ALBEDO_SSE_HEARTBEAT_SECONDS must be more than 0")
    return value


def agents_config() -> AgentsConfig:
    """The config for the running app, parsed once per app."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.extensions.get("albedo.agents_config")
    if config is None:
        config = AgentsConfig.from_extra(app.extensions["albedo.settings"].extra)
        app.extensions["albedo.agents_config"] = config
    return config
