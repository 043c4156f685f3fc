"""Request-argument schemas made once, not per request.

flask-smorest hands webargs the schema *class* given to ``@blp.arguments``, and webargs
builds an instance of it on every request (marshmallow's ``Schema.__init__`` copies and
binds every field: a few per cent of a short GET's CPU in profiles). A schema instance's
``load`` keeps no state between calls, so one instance per class serves every request.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest.arguments import ArgumentsMixin
from webargs.flaskparser import FlaskParser


class SchemaReusingParser(FlaskParser):
    """webargs' Flask parser, building each argument schema class once."""

    _instances: dict[type, ma.Schema] = {}

    def _get_schema(self, argmap: Any, req: Any) -> ma.Schema:
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            schema = self._instances.get(argmap)
            if schema is None:
                schema = self._instances[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)


def install() -> None:
    """Make flask-smorest's one parser reuse schemas (idempotent; create_app calls it).

    Its parser is one instance shared by every Blueprint, captured by each ``arguments``
    decorator when a module is imported; its class is switched in place so that routes
    decorated before this call are covered too.
    """
    parser = ArgumentsMixin.ARGUMENTS_PARSER
    if type(parser) is FlaskParser:
        parser.__class__ = SchemaReusingParser
