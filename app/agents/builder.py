"""The agent builder's form: variables and tools as rows, checked row by row, and the
difference between two versions.

The pages post rows (``variables-0-name``, ``tools-2-url``…) rather than JSON; this module
turns them into the version the service expects, or into errors keyed by the field that is
wrong (``variables-1-default``) so each shows next to its row and nothing typed is lost.
The service (app.agents.service) still validates everything again: this is for people.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.agents.config import agents_config
from app.agents.templating import NAME, TYPES, placeholders
from app.agents.tools import TOOL_NAME

VARIABLE_FIELDS = ("name", "type", "default", "required")
TOOL_FIELDS = ("name", "url", "method", "description")
TOOL_METHODS = ("POST", "GET")
_ROW = re.compile(r"^(variables|tools)-(\d{1,3})-(\w+)$")
MAX_ROWS = 50


def configured_models(current: str | None = None) -> list[str]:
    """The models this platform prices (ALBEDO_MODEL_PRICES and the defaults), plus the one a
    version already uses, so editing an old version never silently changes its model."""
    models = sorted(agents_config().prices)
    if current and current not in models:
        models.insert(0, current)
    return models


@dataclass
class BuilderForm:
    """What was typed (to show again) and what is wrong with it (by field key)."""

    model: str = ""
    system_prompt: str = ""
    temperature: str = "0.7"
    max_output_tokens: str = "1024"
    variables: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_version(cls, version: Any | None) -> BuilderForm:
        if version is None:
            return cls(model=configured_models()[0] if configured_models() else "")
        return cls(model=version.model, system_prompt=version.system_prompt,
                   temperature=str(version.temperature),
                   max_output_tokens=str(version.max_output_tokens),
                   variables=[{"name": v["name"], "type": v.get("type", "string"),
                               "default": "" if v.get("default") is None
                               else _text(v["default"]),
                               "required": bool(v.get("required"))} for v in version.variables],
                   tools=[{"name": t["name"], "url": t["url"],
                           "method": t.get("method", "POST"),
                           "description": t.get("description", "")} for t in version.tools])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows(form: Mapping[str, str], kind: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for key in form:
        match = _ROW.match(key)
        if match and match.group(1) == kind and match.group(3) in names:
            index = int(match.group(2))
            if index < MAX_ROWS:
                found.setdefault(index, {})[match.group(3)] = form.get(key, "").strip()
    rows = []
    for index in sorted(found):
        row = found[index]
        if any(row.get(n) for n in names if n not in ("type", "method", "required")):
            rows.append({n: row.get(n, "") for n in names})
    return rows


def _default(kind: str, raw: str) -> tuple[Any, str | None]:
    """The typed default for ``raw`` (None when blank), or why it is not a ``kind``."""
    if raw == "":
        return None, None
    try:
        if kind == "integer":
            return int(raw), None
        if kind == "number":
            return float(raw), None
    except ValueError:
        return None, f"is not {'a whole number' if kind == 'integer' else 'a number'}"
    if kind == "boolean":
        if raw.lower() in ("true", "yes", "1"):
            return True, None
        if raw.lower() in ("false", "no", "0"):
            return False, None
        return None, "is true or false"
    return raw, None


def parse(form: Mapping[str, str], chooses_model: bool = True
          ) -> tuple[BuilderForm, dict[str, Any] | None]:
    """(what was typed with its errors, the version for the service or None on errors).

    ``chooses_model`` False (a customer): a posted model is not read at all; the service
    keeps the agent's model (app.agents.service.model_for)."""
    typed = BuilderForm(model=form.get("model", "").strip() if chooses_model else "",
                        system_prompt=form.get("system_prompt", ""),
                        # blank: the defaults, as a new version starts
                        temperature=form.get("temperature", "").strip() or "0.7",
                        max_output_tokens=form.get("max_output_tokens", "").strip() or "1024",
                        variables=_rows(form, "variables", VARIABLE_FIELDS),
                        tools=_rows(form, "tools", TOOL_FIELDS))
    errors = typed.errors
    if chooses_model and typed.model not in configured_models():
        errors["model"] = "Choose one of the offered models."
    try:
        temperature = float(typed.temperature)
        if not 0 <= temperature <= 2:
            raise ValueError
    except ValueError:
        errors["temperature"] = "Temperature is a number from 0 to 2."
        temperature = 0.0
    try:
        max_tokens = int(typed.max_output_tokens)
        if not 1 <= max_tokens <= 128_000:
            raise ValueError
    except ValueError:
        errors["max_output_tokens"] = "Max output tokens is a whole number from 1 to 128000."
        max_tokens = 0
    variables, seen = [], set()
    for i, row in enumerate(typed.variables):
        row["required"] = bool(row.get("required"))
        if not NAME.match(row["name"]):
            errors[f"variables-{i}-name"] = "Use letters, digits and underscores."
        elif row["name"] in seen:
            errors[f"variables-{i}-name"] = "This name is already used above."
        seen.add(row["name"])
        if row["type"] not in TYPES:
            errors[f"variables-{i}-type"] = "Choose a type."
            continue
        value, problem = _default(row["type"], row["default"])
        if problem:
            errors[f"variables-{i}-default"] = f"The default {problem}."
        variables.append({"name": row["name"], "type": row["type"], "default": value,
                          "required": row["required"] or value is None})
    missing = [p for p in placeholders(typed.system_prompt) if p not in seen]
    if missing:
        errors["system_prompt"] = ("Add a variable row for " + ", ".join(missing)
                                   + ", or take it out of the prompt.")
    tools, tool_names = [], set()
    for i, row in enumerate(typed.tools):
        if not TOOL_NAME.match(row["name"]):
            errors[f"tools-{i}-name"] = "Use letters, digits, '-' and '_' (up to 64)."
        elif row["name"] in tool_names:
            errors[f"tools-{i}-name"] = "This name is already used above."
        tool_names.add(row["name"])
        parts = urlsplit(row["url"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors[f"tools-{i}-url"] = "Use a full http(s) address."
        row["method"] = row["method"] or "POST"
        if row["method"] not in TOOL_METHODS:
            errors[f"tools-{i}-method"] = "Choose POST or GET."
        tools.append({"type": "http", "name": row["name"], "url": row["url"],
                      "method": row["method"], "description": row["description"][:1000]})
    if errors:
        return typed, None
    return typed, {"model": typed.model or None, "system_prompt": typed.system_prompt,
                   "variables": variables, "temperature": temperature,
                   "max_output_tokens": max_tokens, "tools": tools}


# -- what changed between two versions ------------------------------------------------------

@dataclass(frozen=True)
class Change:
    what: str
    before: str
    after: str


def diff(old: Any, new: Any, with_model: bool = True) -> dict[str, Any]:
    """Settings that differ (model, temperature, max tokens, each variable and tool) and the
    system prompt as unified-diff lines; ``with_model`` False (a customer) leaves the
    provider's model out."""
    changes: list[Change] = []
    settings = (("model", "Model"),) if with_model else ()
    for name, label in (*settings, ("temperature", "Temperature"),
                        ("max_output_tokens", "Max output tokens")):
        if getattr(old, name) != getattr(new, name):
            changes.append(Change(label, str(getattr(old, name)), str(getattr(new, name))))
    for kind, label, keys in (("variables", "Variable", ("type", "default", "required")),
                              ("tools", "Tool", ("url", "method", "description"))):
        before = {row["name"]: row for row in getattr(old, kind)}
        after = {row["name"]: row for row in getattr(new, kind)}
        for name in sorted(before.keys() | after.keys()):
            a, b = before.get(name), after.get(name)

            def show(row, keys=keys) -> str:
                return ", ".join(f"{k}: {_text(row.get(k, ''))}" for k in keys
                                 if row.get(k) not in (None, ""))

            if a is None:
                changes.append(Change(f"{label} {name}", "—", "added: " + show(b)))
            elif b is None:
                changes.append(Change(f"{label} {name}", show(a), "removed"))
            elif any(a.get(k) != b.get(k) for k in keys):
                changes.append(Change(f"{label} {name}", show(a), show(b)))
    prompt = list(difflib.unified_diff(old.system_prompt.splitlines(),
                                       new.system_prompt.splitlines(),
                                       fromfile=f"version {old.number}",
                                       tofile=f"version {new.number}", lineterm="", n=2))
    return {"changes": changes, "prompt": prompt}
