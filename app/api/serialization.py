"""Response schemas that dump without marshmallow's per-field call chain.

A page of 20 agents is 200 field dumps; through marshmallow each one is ``Field.serialize``
→ ``get_value`` → ``Schema.get_attribute`` → ``utils.get_value`` → ``_get_value_for_key``
→ ``_serialize``, which profiled at about a quarter of the list request's CPU.
:class:`FastDumpSchema` keeps marshmallow's ``dump`` (hooks, ``many``, errors) and replaces
only its inner loop with a plan made once per schema instance: for a field that reads a plain
attribute or key, the value is read directly and handed to the field's own ``_serialize``
(skipped for a ``str``, ``uuid.UUID`` or ``int`` that the field would return unchanged or as
``str``); any other field (a custom ``serialize`` or ``get_value``, a dotted ``attribute``,
a ``dump_default``) goes through marshmallow's own ``Field.serialize``. The output is the
same dict, key for key (tests/test_api_serialization.py compares both for every schema).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields, missing

_PlanEntry = tuple[str, str, str, fields.Field, int]  # name, key read, key written, field, kind
_GENERIC, _PLAIN, _STRING, _UUID, _INTEGER = range(5)


def _kind(field: fields.Field) -> int:
    cls = type(field)
    if (cls.serialize is not fields.Field.serialize or cls.get_value is not fields.Field.get_value
            or not field._CHECK_ATTRIBUTE or field.dump_default is not missing
            or (field.attribute is not None and "." in field.attribute)):
        return _GENERIC
    if cls is fields.String:
        return _STRING
    if cls is fields.UUID:
        return _UUID
    if cls is fields.Integer and not field.as_string:
        return _INTEGER
    return _PLAIN


def _plan(schema: Schema) -> list[_PlanEntry]:
    generic_access = type(schema).get_attribute is not Schema.get_attribute
    plan = []
    for name, field in schema.dump_fields.items():
        out = field.data_key if field.data_key is not None else name
        key = field.attribute if field.attribute is not None else name
        kind = _GENERIC if generic_access or "." in key else _kind(field)
        plan.append((name, key, out, field, kind))
    return plan


def _by_key(obj: Any) -> Callable[[str], Any]:
    # marshmallow.utils._get_value_for_key: obj[key] first, then the attribute.
    def get(key: str) -> Any:
        try:
            return obj[key]
        except (KeyError, IndexError, TypeError, AttributeError):
            return getattr(obj, key, missing)
    return get


class FastDumpSchema(Schema):
    """A marshmallow schema whose dump reads fields through a plan made once (see above)."""

    _albedo_plan: list[_PlanEntry] | None = None

    def _serialize(self, obj: Any, *, many: bool = False):
        if many and obj is not None:
            return [self._serialize(item) for item in obj]
        plan = self._albedo_plan
        if plan is None:
            plan = self._albedo_plan = _plan(self)
        get = _by_key(obj) if hasattr(obj, "__getitem__") else (
            lambda key: getattr(obj, key, missing))
        ret = self.dict_class()
        for name, key, out, field, kind in plan:
            if kind == _GENERIC:
                value = field.serialize(name, obj, accessor=self.get_attribute)
                if value is missing:
                    continue
                ret[out] = value
                continue
            value = get(key)
            if value is missing:
                continue
            if kind == _STRING and type(value) is str:
                ret[out] = value
            elif kind == _UUID and type(value) is uuid.UUID:
                ret[out] = str(value)
            elif kind == _INTEGER and type(value) is int:
                ret[out] = value
            elif value is None and kind != _PLAIN:
                ret[out] = None  # String, UUID and Integer dump None as None
            else:
                ret[out] = field._serialize(value, name, obj)
        return ret


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, encoding response bodies with orjson.

    The standard library's encoder was a few per cent of a page of agents' CPU (and of
    /me's); orjson's is a fraction of that. Same output as Flask's compact answer (sorted
    keys, a trailing newline; dates, Decimals and dataclasses through Flask's own
    ``default``) except that non-ASCII text is sent as UTF-8 rather than ``\\u`` escapes
    and a NaN or infinite float as ``null`` (valid JSON) rather than ``NaN``.
    Anything orjson refuses (an integer beyond 64 bits, say) and debug mode's indented
    output go through Flask's encoder, as before.
    ``dumps`` (templates' ``tojson``) is Flask's, unchanged.
    """

    _OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
                | orjson.OPT_APPEND_NEWLINE)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=self._OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)
