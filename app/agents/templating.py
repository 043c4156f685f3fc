"""System prompt templates: ``{{name}}`` placeholders, declared variables, validation.

Only substitution, no expressions: a prompt template is customer input and must not be able
to run code (so no Jinja here).
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import ApiError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
}


def placeholders(template: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def _type_ok(kind: str, value: Any) -> bool:
    # bool is an int in Python; an integer variable must not accept true/false.
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def validate_declarations(template: str, variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a version's declared variables against its template; returns them normalised."""
    declared: dict[str, dict[str, Any]] = {}
    for raw in variables:
        name = raw.get("name", "")
        kind = raw.get("type", "string")
        if not isinstance(name, str) or not NAME.match(name):
            raise ApiError(422, "invalid_variable", f"Variable name {name!r} is not valid: use "
                                                    "letters, digits and underscores.")
        if kind not in TYPES:
            raise ApiError(422, "invalid_variable",
                           f"Variable {name!r} has type {kind!r}; use one of "
                           f"{', '.join(TYPES)}.")
        if name in declared:
            raise ApiError(422, "invalid_variable", f"Variable {name!r} is declared twice.")
        default = raw.get("default")
        if default is not None and not _type_ok(kind, default):
            raise ApiError(422, "invalid_variable",
                           f"The default of {name!r} is not a {kind}.")
        declared[name] = {"name": name, "type": kind, "default": default,
                          "required": bool(raw.get("required", default is None))}
    undeclared = [p for p in placeholders(template) if p not in declared]
    if undeclared:
        raise ApiError(422, "undeclared_variable",
                       "The system prompt uses variables that are not declared: "
                       + ", ".join(undeclared) + ".", details={"variables": undeclared})
    return list(declared.values())


def resolve(variables: list[dict[str, Any]], given: dict[str, Any] | None) -> dict[str, Any]:
    """The values for one execution: given ones type-checked, defaults for the rest."""
    given = dict(given or {})
    declared = {v["name"]: v for v in variables}
    unknown = sorted(set(given) - set(declared))
    problems: dict[str, str] = {name: "not declared by this agent version" for name in unknown}
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            if not _type_ok(spec["type"], given[name]):
                problems[name] = f"must be a {spec['type']}"
            else:
                values[name] = given[name]
        elif spec.get("default") is not None:
            values[name] = spec["default"]
        elif spec.get("required", True):
            problems[name] = "is required"
    if problems:
        raise ApiError(422, "invalid_variables", "Some variables are missing or invalid.",
                       details={"variables": problems})
    return values


def render(template: str, values: dict[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return PLACEHOLDER.sub(substitute, template)
