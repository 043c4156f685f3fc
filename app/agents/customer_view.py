"""What a reseller's customer may see of an execution: the agent, never the provider.

Customers (role USER) buy the reseller's agents at the reseller's prices; the provider's model
name and what the provider charged (the reseller's cost, hence its margin) are the
reseller's business. Resellers and the platform see both. Pages and API answers ask here.
"""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context

PROVIDER_ONLY_ROLES = ("ADMIN", "RESELLER")


def sees_provider_details(role: str | None) -> bool:
    return role in PROVIDER_ONLY_ROLES


def _request_role() -> str | None:
    """The API caller's role when this request authenticated one (pages pass it instead)."""
    if has_request_context() and "principal" in g:
        return g.principal.role
    return None


def strip_execution(data: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """An execution's API answer without its model and cost, for a customer."""
    if sees_provider_details(role or _request_role()):
        return data
    data.pop("model", None)
    usage = data.get("usage")
    if isinstance(usage, dict):
        usage.pop("cost_micros", None)
        usage.pop("currency", None)
    return data


def strip_version(data: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """An agent version's API answer without the provider's model, for a customer."""
    if not sees_provider_details(role or _request_role()):
        data.pop("model", None)
    return data


def strip_usage(data: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """The usage report without costs, for a customer (executions and tokens stay)."""
    if sees_provider_details(role or _request_role()):
        return data
    data.pop("currency", None)
    for row in (*data.get("items", ()), data.get("totals") or {}):
        row.pop("cost_micros", None)
    return data
